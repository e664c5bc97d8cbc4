"""What a snapshot writes: the job cut at a set of applied sequences, and the copy of one
reel's changed rows as of that cut (counter/shard_owner.py cuts and writes the jobs)."""

from __future__ import annotations

from collections.abc import Collection
from dataclasses import dataclass, field

import numpy as np

from counter.shard_state import NO_USERS, ShardState
from counter.store import ReelRollup


@dataclass
class SnapshotJob:
    snapshot_id: int
    seqs: dict[str, int]
    # Copies made and not written yet (each as of the cut); the rest of the cut's reels
    # are in `ShardState.uncopied`.
    unwritten: list[ReelRollup] = field(default_factory=list)
    # Reels whose copies Cassandra acknowledged. Only their ids are kept: under load a
    # job runs for minutes, and holding every written copy (sketches included) until the
    # job ended grew the counters' RSS through the whole of `make bench-counters`.
    written: list[int] = field(default_factory=list)

    def reel_ids(self) -> set[int]:
        """Every reel copied so far, written or not."""
        return {*self.written, *(copy.reel_id for copy in self.unwritten)}

    def mark_written(self, count: int) -> None:
        """The first `count` unwritten copies are in Cassandra."""
        self.written.extend(copy.reel_id for copy in self.unwritten[:count])
        del self.unwritten[:count]


def take_rollups(
    reel_ids: list[int], state: ShardState, new_reels: Collection[int]
) -> list[ReelRollup]:
    """Copies the reels' totals and changed rows, and clears their dirty marks: a later
    change marks them again for the next snapshot. `new_reels`: those never written."""
    reels = [state.reels[reel_id] for reel_id in reel_ids]
    slots = np.fromiter((reel.slot for reel in reels), dtype=np.int64, count=len(reels))
    totals = state.totals[slots].tolist()
    rollups = []
    for reel_id, reel, reel_totals, buckets in zip(
        reel_ids, reels, totals, state.buckets.take_dirty_of(slots), strict=True
    ):
        like_states = reel.like_states or {}
        likes = [(user, *like_states[user]) for user in reel.dirty_users]
        reel.dirty_users = NO_USERS
        viewers = reel.flush_viewers().to_bytes() if reel.viewers_dirty else None
        reel.viewers_dirty = False
        rollups.append(
            ReelRollup(reel_id, tuple(reel_totals), likes, buckets, viewers, reel_id in new_reels)
        )
    return rollups
