"""What a snapshot writes: the job cut at a set of applied sequences, and the copy of one
reel's changed rows as of that cut (counter/shard_owner.py cuts and writes the jobs)."""

from __future__ import annotations

from dataclasses import dataclass

from counter.shard_state import ReelState
from counter.store import ReelRollup


@dataclass
class SnapshotJob:
    snapshot_id: int
    seqs: dict[str, int]
    # Copies made so far (each as of the cut); the rest of the cut's reels are in
    # `ShardState.uncopied`.
    reels: list[ReelRollup]


def take_rollup(reel_id: int, reel: ReelState, new_reel: bool) -> ReelRollup:
    """Copies the reel's totals and changed rows, and clears its dirty marks: a later
    change marks them again for the next snapshot."""
    likes = [(user, *reel.like_states[user]) for user in reel.dirty_users]
    buckets = [(width, start, *reel.bucket((width, start))) for width, start in reel.dirty_buckets]
    reel.clear_dirty()
    viewers = reel.flush_viewers().to_bytes() if reel.viewers_dirty else None
    reel.viewers_dirty = False
    totals = (reel.views, reel.likes, reel.views_removed, reel.likes_removed)
    return ReelRollup(reel_id, totals, likes, buckets, viewers, new_reel)
