"""Snapshot copies as columns (counter/snapshot_job.py): what a copy holds, and how a job
hands out and retires copies across chunks."""

from __future__ import annotations

import pytest

from counter.shard_state import ShardState
from counter.snapshot_job import SnapshotJob, take_rollups
from counter.store import ReelRollup
from counter.unique_viewers import UniqueViewers
from protos import counter_pb2

MINUTE_MS = 60_000


def busy_state() -> ShardState:
    """Reel 1: views in minutes 100 and 101 (hour 1), a like at 500 ms (minute and hour
    0) and two viewers; reel 2: views and a viewer; reel 3: a like only."""
    state = ShardState()
    state.apply_batch(
        counter_pb2.ApplyBatchRequest(
            view_reel_ids=[1, 1, 2],
            view_minutes=[100, 101, 100],
            view_counts=[3, 4, 5],
            like_reel_ids=[1, 3],
            like_user_ids=[10, 11],
            like_ts_ms=[500, 600],
            like_values=[True, True],
            viewer_reel_ids=[1, 1, 2],
            viewer_user_ids=[10, 12, 13],
        )
    )
    return state


def by_reel(rollups: list[ReelRollup]) -> dict[int, ReelRollup]:
    return {rollup.reel_id: rollup for rollup in rollups}


def test_a_copy_holds_each_reels_totals_changed_rows_and_viewers() -> None:
    state = busy_state()
    chunk = take_rollups([1, 2, 3], state, new_reels={2})
    copies = by_reel(chunk.rollups(0, 3))
    assert copies[1].totals == (7, 1, 0, 0)
    assert copies[1].likes == [(10, 500, True)]
    assert sorted(copies[1].buckets) == [
        ("day", 0, 7, 1),
        ("hour", 0, 0, 1),
        ("hour", 3_600_000, 7, 0),
        ("minute", 0, 0, 1),
        ("minute", 100 * MINUTE_MS, 3, 0),
        ("minute", 101 * MINUTE_MS, 4, 0),
    ]
    assert copies[1].viewers is not None
    assert UniqueViewers.from_bytes(copies[1].viewers).count() == 2
    assert copies[2].likes == []
    assert copies[2].new_reel
    assert not copies[1].new_reel
    assert copies[3].totals == (0, 1, 0, 0)
    assert copies[3].viewers is None
    assert sorted(copies[3].buckets) == [("day", 0, 0, 1), ("hour", 0, 0, 1), ("minute", 0, 0, 1)]
    # Any range of entries gives the same rows as the whole.
    assert chunk.rollups(1, 3) == chunk.rollups(0, 3)[1:]


def test_a_copy_keeps_the_values_of_the_cut_and_clears_the_marks() -> None:
    state = busy_state()
    chunk = take_rollups([1], state, new_reels=())
    state.apply_batch(
        counter_pb2.ApplyBatchRequest(view_reel_ids=[1], view_minutes=[101], view_counts=[50])
    )
    assert chunk.rollups(0, 1)[0].totals == (7, 1, 0, 0)
    again = take_rollups([1], state, new_reels=()).rollups(0, 1)[0]
    # Only what changed since the first copy: one minute, its hour and day; no like rows;
    # the viewer set was not changed, so it is not written again.
    assert again.totals == (57, 1, 0, 0)
    assert sorted(again.buckets) == [
        ("day", 0, 57, 1),
        ("hour", 3_600_000, 57, 0),
        ("minute", 101 * MINUTE_MS, 54, 0),
    ]
    assert again.likes == []
    assert again.viewers is None


def test_a_job_hands_out_copies_in_order_across_chunks() -> None:
    state = busy_state()
    job = SnapshotJob(1, {"edge": 1})
    job.add(take_rollups([1, 2], state, new_reels=()))
    job.add(take_rollups([], state, new_reels=()))
    job.add(take_rollups([3], state, new_reels=()))
    assert job.unwritten_count == 3
    assert [r.reel_id for r in job.next_rollups(2)] == [1, 2]
    assert [r.reel_id for r in job.next_rollups(10)] == [1, 2, 3]
    job.mark_written(1)
    assert job.unwritten_reel_ids() == [2, 3]
    assert [r.reel_id for r in job.next_rollups(2)] == [2, 3]
    job.mark_written(2)
    assert job.unwritten_count == 0
    assert job.unwritten == []
    assert list(job.written) == [1, 2, 3]
    assert job.reel_ids() == {1, 2, 3}
    assert job.next_rollups(5) == []


def test_a_job_refuses_to_retire_more_copies_than_it_holds() -> None:
    job = SnapshotJob(1, {})
    job.add(take_rollups([1], busy_state(), new_reels=()))
    with pytest.raises(ValueError, match="1 were unwritten"):
        job.mark_written(2)
    assert job.unwritten_count == 1
