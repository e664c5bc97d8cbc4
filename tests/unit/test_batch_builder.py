from collections import Counter

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from edge.batch_builder import EventColumns, ShardBatch, build_shard_batches
from protos import common_pb2, counter_pb2
from reelstream.ring import ConsistentHashRing

VIEW, LIKE, UNLIKE = (
    common_pb2.EVENT_KIND_VIEW,
    common_pb2.EVENT_KIND_LIKE,
    common_pb2.EVENT_KIND_UNLIKE,
)


def request_of(shard_batch: ShardBatch, shard: int = 0) -> counter_pb2.ApplyBatchRequest:
    """What the shard receives: the batch's bytes parsed by protobuf."""
    batch_id = counter_pb2.BatchId(edge_id="edge-a.1", shard=shard, seq=7)
    request = counter_pb2.ApplyBatchRequest.FromString(shard_batch.payload(batch_id))
    assert request.batch_id == batch_id
    return request


def columns(reels: list[int], users: list[int], kinds: list[int], ts: list[int]) -> EventColumns:
    return EventColumns.from_batch(
        common_pb2.EventBatch(reel_ids=reels, user_ids=users, kinds=kinds, client_ts_ms=ts)
    )


def test_a_hot_reel_becomes_one_entry_per_minute() -> None:
    entry = columns(
        [5] * 1000, list(range(1, 1001)), [VIEW] * 1000, [60_000 * 10 + i for i in range(1000)]
    )
    batches = build_shard_batches(entry, ConsistentHashRing.of_size(2))
    (shard_batch,) = batches.values()
    request = request_of(shard_batch)
    assert list(request.view_reel_ids) == [5]
    assert list(request.view_counts) == [1000]
    assert shard_batch.view_deltas.get(5) == 1000
    assert len(request.viewer_user_ids) == 1000
    assert shard_batch.events == 1000


def test_likes_coalesce_to_the_latest_state_per_user_and_reel() -> None:
    entry = columns([5, 5, 5], [1, 1, 2], [LIKE, UNLIKE, LIKE], [10, 20, 15])
    (shard_batch,) = build_shard_batches(entry, ConsistentHashRing.of_size(1)).values()
    request = request_of(shard_batch)
    assert list(zip(request.like_user_ids, request.like_values, strict=True)) == [
        (1, False),
        (2, True),
    ]


# Mostly few distinct keys (so events aggregate), sometimes user ids too wide to share a
# 64-bit sort key with a rank (the builder's general path) and minutes spanning uint32.
events = st.lists(
    st.tuples(
        st.one_of(st.integers(1, 30), st.integers(2**62, 2**62 + 3)),
        st.one_of(st.integers(1, 5), st.integers(2**40, 2**40 + 2)),
        st.sampled_from([VIEW, LIKE, UNLIKE]),
        st.one_of(st.integers(0, 300_000), st.integers(0, 2**32 * 60_000 - 1)),
    ),
    max_size=200,
)


@given(events, st.integers(1, 4))
def test_aggregation_matches_a_plain_per_event_fold(
    rows: list[tuple[int, int, int, int]], shard_count: int
) -> None:
    ring = ConsistentHashRing.of_size(shard_count)
    cols = columns(
        [r[0] for r in rows], [r[1] for r in rows], [r[2] for r in rows], [r[3] for r in rows]
    )
    batches = build_shard_batches(cols, ring)
    views: Counter[tuple[int, int]] = Counter()
    latest: dict[tuple[int, int], tuple[int, bool]] = {}
    viewers = set()
    for reel, user, kind, ts in rows:
        if kind == VIEW:
            views[(reel, ts // 60_000)] += 1
            viewers.add((reel, user))
        else:
            value = (ts, kind == LIKE)
            latest[(reel, user)] = max(latest.get((reel, user), value), value)
    got_views: Counter[tuple[int, int]] = Counter()
    got_likes = {}
    got_viewers = set()
    for shard, batch in batches.items():
        r = request_of(batch, shard)
        assert all(ring.shard_for(x) == shard for x in [*r.view_reel_ids, *r.like_reel_ids])
        assert list(r.viewer_reel_ids) == sorted(r.viewer_reel_ids)
        assert list(r.view_reel_ids) == sorted(r.view_reel_ids)
        assert len(set(zip(r.view_reel_ids, r.view_minutes, strict=True))) == len(r.view_reel_ids)
        for reel, minute, count in zip(r.view_reel_ids, r.view_minutes, r.view_counts, strict=True):
            got_views[(reel, minute)] += count
        for reel, user, ts, liked in zip(
            r.like_reel_ids, r.like_user_ids, r.like_ts_ms, r.like_values, strict=True
        ):
            got_likes[(reel, user)] = (ts, liked)
        got_viewers |= set(zip(r.viewer_reel_ids, r.viewer_user_ids, strict=True))
        assert batch.view_deltas.total == sum(r.view_counts)
        for reel in set(r.view_reel_ids):
            assert batch.view_deltas.get(reel) == sum(
                c for x, c in zip(r.view_reel_ids, r.view_counts, strict=True) if x == reel
            )
    assert got_views == views
    assert got_likes == latest
    assert got_viewers == viewers
    assert sum(b.events for b in batches.values()) == len(rows)


def test_view_counts_per_reel() -> None:
    cols = columns([3, 3, 4, 4], [1, 2, 1, 2], [VIEW, VIEW, LIKE, VIEW], [0, 0, 0, 0])
    assert cols.view_counts() == {3: 2, 4: 1}
    assert np.array_equal(EventColumns.concat([cols, cols]).reel_ids, [3, 3, 4, 4] * 2)


def test_minutes_beyond_the_requests_uint32_are_refused_not_wrapped() -> None:
    cols = columns([3], [1], [VIEW], [2**32 * 60_000])
    with pytest.raises(ValueError, match="uint32"):
        build_shard_batches(cols, ConsistentHashRing.of_size(1))
