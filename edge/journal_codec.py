"""How accepted events are stored in the edge's Redis journal: packed numpy columns.

An entry is a small header and the four columns counting needs, each at the narrowest
little-endian width that holds its values (timestamps as offsets from the entry's earliest
one). Packing is a few array operations, where building and serializing an `EventBatch`
cost a Python step per value: 0.07-0.09 against 0.32-0.47 us/event in session 17's ad-hoc
measurement (docs/benchmarks.md); the bytes are about as small as the protobuf's varints.

Journals written before this format hold serialized `EventBatch` messages; they are still
read. A protobuf message never starts with a zero byte (field number 0 is invalid), so the
first byte tells the two apart.
"""

from __future__ import annotations

import struct

import numpy as np
import numpy.typing as npt

from edge.event_columns import EventColumns
from protos import common_pb2

MAGIC = 0
VERSION = 1
# magic, version, events, timestamp base, then the byte width of each packed column.
_HEADER = struct.Struct("<BBIq4B")
_WIDTHS = (1, 2, 4, 8)


class CorruptJournalEntry(ValueError):
    """A journal entry that is neither a packed entry nor an EventBatch."""


def _narrowest(values: npt.NDArray[np.uint64]) -> tuple[int, bytes]:
    top = int(values.max()) if len(values) else 0
    width = next(w for w in _WIDTHS if top < 1 << (8 * w))
    return width, values.astype(f"<u{width}", copy=False).tobytes()


def encode_entry(entry: EventColumns) -> bytes:
    """The journal bytes of `entry`."""
    count = len(entry)
    base = int(entry.ts_ms.min()) if count else 0
    offsets = (entry.ts_ms - base).astype(np.uint64)
    columns = [
        _narrowest(entry.reel_ids),
        _narrowest(entry.user_ids),
        _narrowest(entry.kinds.astype(np.uint64)),
        _narrowest(offsets),
    ]
    header = _HEADER.pack(MAGIC, VERSION, count, base, *(width for width, _ in columns))
    return b"".join([header, *(packed for _, packed in columns)])


def decode_entry(raw: bytes) -> EventColumns:
    """The events of one journal entry, in either format.

    Raises:
        CorruptJournalEntry: `raw` is truncated or of an unknown version.
    """
    if raw[:1] != bytes([MAGIC]):
        try:
            return EventColumns.from_batch(common_pb2.EventBatch.FromString(raw))
        except Exception as exc:  # upb raises its own DecodeError type
            raise CorruptJournalEntry(f"unreadable journal entry: {exc}") from exc
    if len(raw) < _HEADER.size:
        raise CorruptJournalEntry(f"journal entry of {len(raw)} bytes has no header")
    _, version, count, base, *widths = _HEADER.unpack_from(raw)
    if version != VERSION or any(w not in _WIDTHS for w in widths):
        raise CorruptJournalEntry(f"journal entry of unknown version {version} {widths}")
    if len(raw) != _HEADER.size + count * sum(widths):
        raise CorruptJournalEntry(f"journal entry of {count} events has {len(raw)} bytes")
    columns = []
    offset = _HEADER.size
    for width in widths:
        columns.append(np.frombuffer(raw, f"<u{width}", count, offset).astype(np.uint64))
        offset += count * width
    reel_ids, user_ids, kinds, offsets = columns
    return EventColumns(reel_ids, user_ids, kinds.astype(np.int64), offsets.astype(np.int64) + base)
