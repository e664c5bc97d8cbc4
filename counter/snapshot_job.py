"""What a snapshot writes: the job cut at a set of applied sequences, and the copy of one
reel's changed rows as of that cut (counter/shard_owner.py cuts and writes the jobs)."""

from __future__ import annotations

from dataclasses import dataclass, field

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


def take_rollup(reel_id: int, state: ShardState, new_reel: bool) -> ReelRollup:
    """Copies a reel's totals and changed rows, and clears its dirty marks: a later
    change marks them again for the next snapshot."""
    reel = state.reels[reel_id]
    like_states = reel.like_states or {}
    likes = [(user, *like_states[user]) for user in reel.dirty_users]
    reel.dirty_users = NO_USERS
    buckets = state.buckets.take_dirty(reel.slot)
    viewers = reel.flush_viewers().to_bytes() if reel.viewers_dirty else None
    reel.viewers_dirty = False
    return ReelRollup(reel_id, state.totals_of(reel_id), likes, buckets, viewers, new_reel)
