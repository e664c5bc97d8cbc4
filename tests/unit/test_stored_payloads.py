import zlib

import numpy as np
import pytest

from counter import stored_payloads
from edge.batch_builder import build_shard_batches
from edge.event_columns import EventColumns
from protos import common_pb2, counter_pb2
from reelstream.ring import ConsistentHashRing


def zipf_batch_payload(events: int = 7_000) -> bytes:
    """One shard's ApplyBatchRequest for a Zipf workload like the benchmark's."""
    rng = np.random.default_rng(7)
    reels = np.minimum(rng.zipf(1.2, events), 1_000_000).astype(np.uint64)
    users = rng.integers(1, 100_000, events, dtype=np.uint64)
    kinds = np.where(rng.random(events) < 0.05, common_pb2.EVENT_KIND_LIKE, 0)
    kinds = np.where(kinds == 0, common_pb2.EVENT_KIND_VIEW, kinds).astype(np.int64)
    ts = np.full(events, 1_764_000_000_000, dtype=np.int64)
    (batch,) = build_shard_batches(
        EventColumns(reels, users, kinds, ts), ConsistentHashRing.of_size(1)
    ).values()
    return batch.payload(counter_pb2.BatchId(edge_id="edge-a.1", shard=0, seq=9))


def test_a_stored_payload_reads_back_as_the_request_and_takes_less_room() -> None:
    payload = zipf_batch_payload()
    stored = stored_payloads.encode(payload)
    assert stored.startswith(stored_payloads.ZLIB_TAG)
    assert len(stored) < 0.8 * len(payload)
    assert stored_payloads.decode(stored) == payload
    assert (
        counter_pb2.ApplyBatchRequest.FromString(stored_payloads.decode(stored)).batch_id.seq == 9
    )


@pytest.mark.parametrize("payload", [b"", b"\x0a\x05hello", bytes(range(1, 256)) * 40])
def test_every_payload_round_trips(payload: bytes) -> None:
    assert stored_payloads.decode(stored_payloads.encode(payload)) == payload


def test_rows_written_before_the_tag_read_as_they_are() -> None:
    payload = zipf_batch_payload(500)
    assert payload[:1] != b"\x00"  # a serialized request never starts with a zero byte
    assert stored_payloads.decode(payload) == payload
    assert stored_payloads.decode(b"") == b""


def test_an_unknown_format_or_damaged_bytes_are_an_error_not_a_wrong_batch() -> None:
    with pytest.raises(stored_payloads.UnknownPayloadFormat, match="0002"):
        stored_payloads.decode(b"\x00\x02" + zlib.compress(b"abc"))
    damaged = bytearray(stored_payloads.encode(zipf_batch_payload(500)))
    damaged[10:20] = bytes(10)
    with pytest.raises(zlib.error):
        stored_payloads.decode(bytes(damaged))
