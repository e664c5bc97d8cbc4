"""How batch payloads are kept in `shard_batches`: zlib-compressed, behind a format tag.

Why compressed: the payloads (the serialized ApplyBatchRequests, kept for replay until a
snapshot covers them) are most of the bytes the counters write. Under load a snapshot takes
minutes, so they pile up in Cassandra's memtables until a flush writes them out, and on the
benchmark's 2-core machine a flush of ~600 MiB of them stalls the shards' commits for
seconds (at half the peak rate, a forced flush made the edges hold 507 calls; ack p99 119
ms against 26 without). zlib at level 1 halves them (the benchmark's workload: 8.5-8.8
bytes per event, 0.48-0.54 of that compressed), so the memtables fill half as fast and
flushes come half as often: after the same load (60 s warm-up, 60 s peak, 60 s at half
rate), 330-361 MiB of payloads in the memtable against 606-628 (alternated runs, session
21, docs/benchmarks.md). A flush still stalls the commits about as much (forced flushes:
731 and 276 calls held against 646 and 283). The shard owner compresses in a worker
thread (zlib releases the GIL) while a batch waits for its group commit; compressing a
group's payloads inside its commit had made commits ~20 % slower.

Rows written before the tag existed hold the serialized request itself. A serialized
protobuf message never starts with a zero byte (it would be field number 0, which does not
exist), so a leading zero marks the tagged form.
"""

from __future__ import annotations

import zlib

ZLIB_TAG = b"\x00\x01"
"""A zero byte (never the start of a protobuf message), then the format: 1 = zlib."""
LEVEL = 1


class UnknownPayloadFormat(ValueError):
    """A stored payload carries a format tag this version does not know."""


def encode(payload: bytes) -> bytes:
    """The form a payload is stored in."""
    return ZLIB_TAG + zlib.compress(payload, LEVEL)


def decode(stored: bytes) -> bytes:
    """The payload a stored value holds, whichever form it was written in.

    Raises:
        UnknownPayloadFormat: tagged with a format this version does not know.
        zlib.error: the compressed bytes are damaged.
    """
    if stored[:1] != b"\x00":
        return stored  # written before the tag: the serialized request itself
    if stored[:2] != ZLIB_TAG:
        raise UnknownPayloadFormat(f"unknown batch payload format {stored[:2].hex()}")
    return zlib.decompress(stored[2:])
