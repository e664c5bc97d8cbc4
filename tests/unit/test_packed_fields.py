"""Packed columns written from numpy parse back, byte for byte as protobuf writes them."""

from __future__ import annotations

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from protos import counter_pb2
from reelstream.packed_fields import length_delimited, packed, varints

u64 = st.integers(0, 2**64 - 1)
i64 = st.integers(-(2**63), 2**63 - 1)
u32 = st.integers(0, 2**32 - 1)


@settings(max_examples=300, deadline=None)
@given(
    st.lists(u64, max_size=50),
    st.lists(u32, max_size=50),
    st.lists(i64, max_size=50),
    st.lists(st.booleans(), max_size=50),
)
def test_packed_columns_equal_protobufs_own_encoding(
    reels: list[int], minutes: list[int], stamps: list[int], values: list[bool]
) -> None:
    want = counter_pb2.ApplyBatchRequest(
        view_reel_ids=reels, view_minutes=minutes, like_ts_ms=stamps, like_values=values
    ).SerializeToString(deterministic=True)
    got = b"".join(
        [
            packed(2, np.array(reels, dtype=np.uint64)),
            packed(3, np.array(minutes, dtype=np.uint32)),
            packed(7, np.array(stamps, dtype=np.int64)),
            packed(8, np.array(values, dtype=np.bool_)),
        ]
    )
    assert got == want


def test_every_varint_length_round_trips() -> None:
    values = np.array([0, 1, 127, 128, 2**14 - 1, 2**14, 2**35, 2**63, 2**64 - 1], np.uint64)
    message = counter_pb2.ApplyBatchRequest.FromString(packed(2, values))
    assert list(message.view_reel_ids) == values.tolist()
    assert len(varints(values)) == sum([1, 1, 1, 2, 2, 3, 6, 10, 10])


def test_a_long_field_gets_a_multi_byte_length() -> None:
    values = np.full(300, 2**40, dtype=np.uint64)  # 6 bytes each: 1,800 bytes
    field = packed(9, values)
    assert field[:3] == bytes([9 << 3 | 2, 1800 & 0x7F | 0x80, 1800 >> 7])
    assert list(counter_pb2.ApplyBatchRequest.FromString(field).viewer_reel_ids) == [2**40] * 300


def test_an_embedded_message_is_a_length_delimited_field() -> None:
    batch_id = counter_pb2.BatchId(edge_id="e.1", shard=3, seq=9).SerializeToString()
    message = counter_pb2.ApplyBatchRequest.FromString(length_delimited(1, batch_id))
    assert (message.batch_id.edge_id, message.batch_id.shard, message.batch_id.seq) == ("e.1", 3, 9)
