import itertools

import pytest
from hypothesis import given
from hypothesis import strategies as st

from counter.config import CounterConfig
from counter.reel_records import ReelRecord
from counter.shard_state import VIEWER_BUFFER_MIN, ReelNotLoaded, ShardState, bucket_horizons
from counter.snapshot_job import take_rollups
from counter.unique_viewers import UniqueViewers
from protos import counter_pb2


def like_batch(events: list[tuple[int, int, int, bool]]) -> counter_pb2.ApplyBatchRequest:
    batch = counter_pb2.ApplyBatchRequest()
    for reel_id, user_id, ts_ms, liked in events:
        batch.like_reel_ids.append(reel_id)
        batch.like_user_ids.append(user_id)
        batch.like_ts_ms.append(ts_ms)
        batch.like_values.append(liked)
    return batch


def test_views_are_summed_with_minute_hour_and_day_buckets() -> None:
    state = ShardState()
    batch = counter_pb2.ApplyBatchRequest(
        view_reel_ids=[7, 7, 8], view_minutes=[100, 101, 100], view_counts=[3, 4, 5]
    )
    assert state.apply_batch(batch) == {7, 8}
    assert state.counts([7, 8, 9])[0].views == 7
    assert state.counts([7, 8, 9])[2].views == 0
    minutes = state.time_series(7, "minute", 0, 2**62)
    assert minutes == [(100 * 60_000, 3, 0), (101 * 60_000, 4, 0)]
    assert state.time_series(7, "day", 0, 2**62) == [(0, 7, 0)]


def test_like_then_unlike_then_stale_like_leaves_reel_unliked() -> None:
    state = ShardState()
    state.apply_batch(like_batch([(1, 10, 100, True)]))
    state.apply_batch(like_batch([(1, 10, 200, False)]))
    state.apply_batch(like_batch([(1, 10, 150, True)]))  # older than the unlike: ignored
    assert state.counts([1])[0].likes == 0
    assert state.liked(10, [1]) == [False]


def test_repeated_likes_from_one_user_count_once() -> None:
    state = ShardState()
    for ts in range(5):
        state.apply_batch(like_batch([(1, 10, ts, True)]))
    assert state.counts([1])[0].likes == 1


like_events = st.lists(
    st.tuples(st.integers(1, 3), st.integers(1, 5), st.integers(0, 50), st.booleans()),
    max_size=30,
)


@given(like_events, st.randoms())
def test_likes_converge_whatever_the_order_and_duplication(
    events: list[tuple[int, int, int, bool]], rng: object
) -> None:
    forward = ShardState()
    forward.apply_batch(like_batch(events))
    shuffled_twice = list(events) * 2
    rng.shuffle(shuffled_twice)  # type: ignore[attr-defined]
    other = ShardState()
    for event in shuffled_twice:
        other.apply_batch(like_batch([event]))
    reels = sorted({e[0] for e in events})
    assert [c.likes for c in forward.counts(reels)] == [c.likes for c in other.counts(reels)]
    # The count is the number of users whose latest state is "liked".
    for reel_id in reels:
        latest: dict[int, tuple[int, bool]] = {}
        for r, user, ts, liked in events:
            if r == reel_id:
                latest[user] = max(latest.get(user, (ts, liked)), (ts, liked))
        expected = sum(1 for _, liked in latest.values() if liked)
        assert other.counts([reel_id])[0].likes == expected


def test_replay_filter_skips_reels_already_in_the_snapshot() -> None:
    state = ShardState()
    batch = counter_pb2.ApplyBatchRequest(
        view_reel_ids=[1, 2], view_minutes=[5, 5], view_counts=[10, 20]
    )
    state.apply_batch(batch, only_reels={1: False, 2: True})
    assert [c.views for c in state.counts([1, 2])] == [0, 20]


def test_all_pairs_of_like_orders_agree() -> None:
    events = [(1, 1, 1, True), (1, 1, 2, False), (1, 2, 1, True), (1, 1, 2, True)]
    results = set()
    for order in itertools.permutations(events):
        state = ShardState()
        state.apply_batch(like_batch(list(order)))
        results.add(state.counts([1])[0].likes)
    assert results == {2}


def test_a_reel_cut_for_a_snapshot_is_copied_before_its_first_change_only() -> None:
    state = ShardState()
    views = counter_pb2.ApplyBatchRequest(
        view_reel_ids=[1, 2], view_minutes=[100, 100], view_counts=[5, 6]
    )
    state.apply_batch(views)
    copies: dict[int, int] = {}

    def copy(reel_ids: list[int]) -> None:
        for reel_id in reel_ids:
            state.uncopied.discard(reel_id)
            copies[reel_id] = state.totals_of(reel_id)[0]

    state.uncopied, state.dirty = state.dirty, set()
    state.copy_before_change = copy
    state.apply_batch(
        counter_pb2.ApplyBatchRequest(
            view_reel_ids=[1, 3], view_minutes=[101, 101], view_counts=[1, 1]
        )
    )
    state.apply_batch(
        counter_pb2.ApplyBatchRequest(view_reel_ids=[1], view_minutes=[102], view_counts=[1])
    )
    assert copies == {1: 5}  # copied once, with its value as of the cut
    assert state.uncopied == {2}
    assert state.totals_of(1)[0] == 7
    assert state.dirty == {1, 3}


def views_at(reel_minutes: list[tuple[int, int]]) -> counter_pb2.ApplyBatchRequest:
    return counter_pb2.ApplyBatchRequest(
        view_reel_ids=[reel for reel, _ in reel_minutes],
        view_minutes=[minute for _, minute in reel_minutes],
        view_counts=[1] * len(reel_minutes),
    )


HORIZONS = {"minute": 100 * 60_000, "hour": 0, "day": 0}


def test_an_old_bucket_leaves_memory_once_no_reel_has_it_dirty() -> None:
    state = ShardState()
    state.apply_batch(views_at([(7, 98), (7, 99), (7, 100), (8, 99)]))
    assert state.retire_buckets(HORIZONS) == 0  # all dirty: no snapshot wrote them yet
    state.buckets.take_dirty(state.reels[7].slot)  # a snapshot copied reel 7 only
    assert state.retire_buckets(HORIZONS) == 1  # minute 98; 99 waits for reel 8
    assert state.buckets.held(state.reels[7].slot) == [
        ("day", 0),
        ("hour", 60 * 60_000),
        ("minute", 99 * 60_000),
        ("minute", 100 * 60_000),
    ]
    state.buckets.take_dirty(state.reels[8].slot)
    assert state.retire_buckets(HORIZONS) == 2  # minute 99, of both reels
    assert [c.views for c in state.counts([7, 8])] == [3, 1]  # totals never leave memory


def test_a_reel_active_every_minute_for_two_days_holds_a_bounded_set_of_buckets() -> None:
    # What a shard does every snapshot (~2 s): a snapshot writes the dirty buckets, then
    # clean ones older than the configured horizons leave memory. A reel's memory is its
    # buckets; held reels are capped by count, so their buckets must be bounded too.
    memory_ms = CounterConfig().bucket_memory_ms
    state = ShardState()
    first = 29_000_000  # Unix minutes
    held = []
    for minute in range(first, first + 2 * 24 * 60):
        state.apply_batch(views_at([(7, minute)]))
        state.apply_batch(like_batch([(7, minute, minute * 60_000, minute % 2 == 0)]))
        slot = state.reels[7].slot
        state.buckets.take_dirty(slot)
        state.retire_buckets(bucket_horizons(minute * 60_000, memory_ms))
        held.append(len(state.buckets.held(slot)))
        assert len(state.buckets.columns) == held[-1]  # one reel: a column per bucket
    assert max(held[-24 * 60 :]) <= 24  # 15-16 minutes, 3-4 hours, 2-3 days
    assert state.counts([7])[0].views == 2 * 24 * 60
    minutes = state.time_series(7, "minute", 0, 2**62)
    assert [views for _, views, _ in minutes] == [1] * len(minutes)


def test_an_evicted_reels_slot_is_reused_from_zero_and_the_reel_reloads_its_values() -> None:
    state = ShardState()
    state.apply_batch(views_at([(1, 100), (1, 101)]))
    state.apply_batch(like_batch([(1, 10, 100 * 60_000, True)]))
    slot = state.reels[1].slot
    state.dirty = set()
    state.buckets.take_dirty(slot)
    assert state.evict_clean(1, set(), scan=1) == 1
    state.apply_batch(views_at([(2, 102)]))
    assert state.reels[2].slot == slot
    assert [(c.views, c.likes) for c in state.counts([2])] == [(1, 0)]
    assert state.time_series(2, "minute", 0, 2**62) == [(102 * 60_000, 1, 0)]
    assert sorted(state.buckets.take_dirty(slot)) == [
        ("day", 0, 1, 0),
        ("hour", 60 * 60_000, 1, 0),
        ("minute", 102 * 60_000, 1, 0),
    ]
    stored = ReelRecord(views=2, likes=1, buckets={("minute", 100 * 60_000): (1, 1)})
    state.load(1, stored, first_segment=0)
    assert [(c.views, c.likes) for c in state.counts([1, 2])] == [(2, 1), (1, 0)]
    assert state.time_series(1, "minute", 0, 2**62) == [(100 * 60_000, 1, 1)]


def test_slots_grow_past_the_initial_capacity_keeping_every_value() -> None:
    state = ShardState()
    reels = list(range(1, 5_001))
    state.apply_batch(views_at([(reel, 100 + reel % 3) for reel in reels]))
    state.apply_batch(views_at([(reel, 100) for reel in reels[::2]]))
    counts = state.counts(reels)
    assert [c.views for c in counts] == [1 + (reel % 2) for reel in reels]
    assert state.time_series(4_999, "minute", 0, 2**62) == [
        (100 * 60_000, 1, 0),
        (101 * 60_000, 1, 0),
    ]


view_entries = st.lists(
    st.tuples(st.integers(1, 6), st.integers(100, 103), st.integers(1, 5)), max_size=40
)


@given(st.lists(view_entries, max_size=5))
def test_views_and_buckets_equal_plain_sums_of_the_entries(
    batches: list[list[tuple[int, int, int]]],
) -> None:
    # Batches may repeat a (reel, minute) and span minutes: the vectorised adds must sum
    # like a loop over entries would.
    state = ShardState()
    totals: dict[int, int] = {}
    minutes: dict[tuple[int, int], int] = {}
    for entries in batches:
        state.apply_batch(
            counter_pb2.ApplyBatchRequest(
                view_reel_ids=[reel for reel, _, _ in entries],
                view_minutes=[minute for _, minute, _ in entries],
                view_counts=[count for _, _, count in entries],
            )
        )
        for reel, minute, count in entries:
            totals[reel] = totals.get(reel, 0) + count
            minutes[reel, minute] = minutes.get((reel, minute), 0) + count
    reels = sorted(totals)
    assert [c.views for c in state.counts(reels)] == [totals[reel] for reel in reels]
    for reel in reels:
        expected = sorted((m * 60_000, v, 0) for (r, m), v in minutes.items() if r == reel)
        assert state.time_series(reel, "minute", 0, 2**62) == expected
        assert state.time_series(reel, "hour", 0, 2**62) == [(3_600_000, totals[reel], 0)]


def test_late_events_name_the_old_buckets_memory_lacks() -> None:
    state = ShardState()
    state.apply_batch(views_at([(7, 99), (7, 150)]))
    state.buckets.take_dirty(state.reels[7].slot)
    state.retire_buckets(HORIZONS)
    # Recent events need no read; late ones on reels held here do (reel 8 has no rows).
    assert state.missing_old_buckets(views_at([(7, 150), (8, 5)]), HORIZONS) == {}
    late = views_at([(7, 99), (7, 150), (8, 5)])
    assert state.missing_old_buckets(late, HORIZONS) == {7: {("minute", 99 * 60_000)}}
    likes = like_batch([(7, 10, 98 * 60_000 + 5, True)])
    assert state.missing_old_buckets(likes, HORIZONS) == {7: {("minute", 98 * 60_000)}}
    # Restored values are what the batch then adds to.
    state.restore_buckets(7, {("minute", 99 * 60_000): [4, 1]})
    assert state.missing_old_buckets(late, HORIZONS) == {}
    state.apply_batch(late)
    assert state.time_series(7, "minute", 99 * 60_000, 100 * 60_000) == [(99 * 60_000, 5, 1)]


def test_replayed_changes_of_unread_reels_merge_by_the_snapshot_that_wrote_the_row() -> None:
    state = ShardState()
    state.unloaded = {7, 8}
    # Segment 0: a batch an unfinished snapshot already covers; segment 1: a later one.
    covered = views_at([(7, 100), (8, 100)])
    covered.like_reel_ids.append(7)
    covered.like_user_ids.append(10)
    covered.like_ts_ms.append(100 * 60_000)
    covered.like_values.append(True)
    later = views_at([(7, 101), (9, 101)])  # reel 9 has no row: applied at once
    state.replay_batch(covered, segment=0, segments=2)
    state.replay_batch(later, segment=1, segments=2)
    assert set(state.reels) == {9}
    assert set(state.partial) == {7, 8}
    with pytest.raises(ReelNotLoaded):
        state.counts([7])

    # Reel 7's row came from the unfinished snapshot: it has the covered batch (and the
    # like) already, so only segment 1 applies. Reel 8's row is older: both apply.
    row_7 = ReelRecord(
        views=1,
        likes=1,
        like_states={10: (100 * 60_000, True)},
        buckets={("minute", 100 * 60_000): (1, 1)},
    )
    state.load(7, row_7, first_segment=1)
    state.load(8, ReelRecord(views=5), first_segment=0)
    assert [(c.views, c.likes) for c in state.counts([7, 8, 9])] == [(2, 1), (6, 0), (1, 0)]
    assert state.time_series(7, "minute", 0, 2**62) == [
        (100 * 60_000, 1, 1),
        (101 * 60_000, 1, 0),
    ]
    assert {7, 8} <= state.dirty  # written by the next snapshot
    assert state.partial == {}
    assert state.unloaded == set()


def test_only_clean_reels_leave_memory_oldest_first_and_passed_over_ones_move_back() -> None:
    state = ShardState()
    state.apply_batch(views_at([(reel_id, 100) for reel_id in range(1, 9)]))
    state.dirty = {2}
    state.uncopied = {3}
    job_reels = {4}

    evicted = state.evict_clean(3, job_reels, scan=8)

    assert evicted == 3
    assert state.unloaded == {1, 5, 6}
    # The reels passed over (in use) moved behind the ones not looked at yet.
    assert list(state.reels) == [7, 8, 2, 3, 4]
    with pytest.raises(ReelNotLoaded):
        state.counts([5])
    state.load(5, ReelRecord(views=5), first_segment=0)
    assert [c.views for c in state.counts([5])] == [5]


def test_eviction_looks_at_no_more_than_its_scan() -> None:
    state = ShardState()
    state.apply_batch(views_at([(reel_id, 100) for reel_id in range(10)]))
    state.dirty = set(range(5))
    assert state.evict_clean(10, set(), scan=5) == 0
    assert list(state.reels) == [5, 6, 7, 8, 9, 0, 1, 2, 3, 4]
    assert state.evict_clean(10, set(), scan=2) == 2
    assert state.unloaded == {5, 6}


def viewers_batch(pairs: list[tuple[int, int]]) -> counter_pb2.ApplyBatchRequest:
    return counter_pb2.ApplyBatchRequest(
        viewer_reel_ids=[reel for reel, _ in pairs], viewer_user_ids=[user for _, user in pairs]
    )


def test_distinct_viewers_are_counted_across_batches_and_repeats() -> None:
    state = ShardState()
    state.apply_batch(viewers_batch([(1, 10), (1, 11), (2, 10)]))
    state.apply_batch(viewers_batch([(1, 11), (1, 12), (1, 12), (3, 2**63)]))
    assert [c.unique_viewers for c in state.counts([1, 2, 3, 4])] == [3, 1, 1, 0]


def test_a_reel_with_many_buffered_viewers_merges_them_without_a_read() -> None:
    state = ShardState()
    state.apply_batch(viewers_batch([(5, user) for user in range(300)] + [(6, 1)]))
    assert not state.reels[5].viewer_buffer
    assert state.reels[5].viewers.count() == 300
    assert state.reels[5].viewers_dirty
    assert state.reels[6].viewer_buffer is not None
    assert state.reels[6].viewer_buffer.tolist() == [1]


def test_replay_filter_keeps_the_viewers_of_kept_reels_only() -> None:
    state = ShardState()
    batch = viewers_batch([(1, 10), (1, 11), (2, 20), (3, 30), (3, 31)])
    state.apply_batch(batch, only_reels={2: False})
    assert [c.unique_viewers for c in state.counts([1, 2, 3])] == [2, 0, 2]
    assert 2 not in state.reels


def test_a_snapshot_copy_includes_waiting_viewers_and_writes_the_set_only_when_changed() -> None:
    state = ShardState()
    state.apply_batch(viewers_batch([(1, 10), (1, 11), (2, 5)]))
    first = {r.reel_id: r for r in take_rollups([1, 2], state, new_reels={1, 2}).rollups(0, 2)}
    assert first[1].viewers is not None
    assert UniqueViewers.from_bytes(first[1].viewers).count() == 2
    assert first[1].new_reel
    state.apply_batch(
        counter_pb2.ApplyBatchRequest(view_reel_ids=[1], view_minutes=[1], view_counts=[1])
    )
    state.apply_batch(viewers_batch([(2, 6)]))
    second = {r.reel_id: r for r in take_rollups([1, 2], state, new_reels=set()).rollups(0, 2)}
    assert second[1].viewers is None  # unchanged since the last copy
    assert second[2].viewers is not None
    assert UniqueViewers.from_bytes(second[2].viewers).count() == 2
    assert not second[2].new_reel


def test_a_reels_buffer_never_holds_more_viewers_than_its_set_however_often_they_return() -> None:
    state = ShardState()
    longest = 0
    for _ in range(40):
        state.apply_batch(viewers_batch([(1, 10), (1, 11), (1, 12)]))
        longest = max(longest, len(state.reels[1].viewer_buffer or ()))
    assert longest < VIEWER_BUFFER_MIN
    assert state.counts([1])[0].unique_viewers == 3
    # A reel with 100 distinct viewers buffers up to 100 ids before merging.
    state.apply_batch(viewers_batch([(2, user) for user in range(100)]))
    state.reels[2].flush_viewers()
    state.apply_batch(viewers_batch([(2, user) for user in range(99)]))
    assert len(state.reels[2].viewer_buffer or ()) == 99
    state.apply_batch(viewers_batch([(2, 500)]))
    assert not state.reels[2].viewer_buffer
    assert state.counts([2])[0].unique_viewers == 101


def test_viewer_pairs_not_grouped_by_reel_are_all_counted() -> None:
    state = ShardState()
    state.apply_batch(viewers_batch([(1, 10), (2, 20), (1, 11), (2, 20), (1, 12)]))
    assert [c.unique_viewers for c in state.counts([1, 2])] == [3, 1]
