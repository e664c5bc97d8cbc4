"""Journal entries survive packing exactly, and entries of the older format still read."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from edge.event_columns import EventColumns
from edge.journal_codec import CorruptJournalEntry, decode_entry, encode_entry
from protos import common_pb2

NOW = 1_800_000_000_000


def columns(events: list[tuple[int, int, int, int]]) -> EventColumns:
    return EventColumns(
        np.array([e[0] for e in events], dtype=np.uint64),
        np.array([e[1] for e in events], dtype=np.uint64),
        np.array([e[2] for e in events], dtype=np.int64),
        np.array([e[3] for e in events], dtype=np.int64),
    )


def assert_same(got: EventColumns, want: EventColumns) -> None:
    for name in ("reel_ids", "user_ids", "kinds", "ts_ms"):
        assert getattr(got, name).dtype == getattr(want, name).dtype
        assert getattr(got, name).tolist() == getattr(want, name).tolist()


@settings(max_examples=200, deadline=None)
@given(
    st.lists(
        st.tuples(
            st.integers(1, 2**63 - 1),
            st.integers(1, 2**63 - 1),
            st.integers(1, 3),
            st.integers(NOW - 86_400_000, NOW + 300_000),
        ),
        max_size=40,
    ),
    st.sampled_from([1, 2**8, 2**16, 2**32]),
)
def test_packed_entries_decode_to_the_same_events(
    events: list[tuple[int, int, int, int]], id_bound: int
) -> None:
    """Ids drawn below `id_bound` exercise each packed width."""
    entry = columns([(r % id_bound, u % id_bound, k, t) for r, u, k, t in events])
    assert_same(decode_entry(encode_entry(entry)), entry)


def test_small_ids_pack_about_as_tightly_as_the_protobuf() -> None:
    entry = columns([(100_000 + i, 50_000 + i, 1, NOW + i) for i in range(1000)])
    protobuf = common_pb2.EventBatch(
        reel_ids=entry.reel_ids.tolist(),
        user_ids=entry.user_ids.tolist(),
        kinds=entry.kinds.tolist(),  # type: ignore[arg-type]
        client_ts_ms=entry.ts_ms.tolist(),
    )
    assert len(encode_entry(entry)) <= len(protobuf.SerializeToString())


def test_entries_journaled_as_event_batches_still_decode() -> None:
    batch = common_pb2.EventBatch(
        reel_ids=[5, 6], user_ids=[7, 8], kinds=[1, 2], client_ts_ms=[NOW, NOW + 1]
    )
    assert_same(
        decode_entry(batch.SerializeToString()), columns([(5, 7, 1, NOW), (6, 8, 2, NOW + 1)])
    )


@pytest.mark.parametrize(
    "damage",
    [lambda raw: raw[:-1], lambda raw: raw[:5], lambda raw: raw[:1] + b"\x09" + raw[2:]],
    ids=["truncated column", "truncated header", "unknown version"],
)
def test_damaged_entries_raise_a_clear_error(damage) -> None:  # type: ignore[no-untyped-def]
    raw = encode_entry(columns([(5, 7, 1, NOW), (6, 8, 2, NOW + 1)]))
    with pytest.raises(CorruptJournalEntry):
        decode_entry(damage(raw))


def test_an_unparseable_old_format_entry_raises_a_clear_error() -> None:
    with pytest.raises(CorruptJournalEntry):
        decode_entry(b"\x0a\xff\xff\xff")
