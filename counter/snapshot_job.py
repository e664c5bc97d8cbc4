"""What a snapshot writes: the job cut at a set of applied sequences, and the copies of the
reels' changed rows as of that cut (counter/shard_owner.py cuts and writes the jobs).

Under load nearly every reel of a job changes again before the job has written it, so
copy-on-write copies most of them within seconds and the job holds them for the minutes it
takes to write. Copies are therefore kept as columns (`RollupChunk`): as a `ReelRollup`
object per reel (a tuple per bucket, ints, a bytes object per viewer set) a copy cost
656-664 bytes of RSS per reel, as columns 136-139 (session 24, docs/benchmarks.md), and
rows are made only for the reels being written (a chunk of up to 2,048).
"""

from __future__ import annotations

from array import array
from collections.abc import Collection
from dataclasses import dataclass, field

import numpy as np
import numpy.typing as npt

from counter.bucket_columns import DirtyBuckets
from counter.shard_state import NO_USERS, ShardState
from counter.store import ReelRollup

I64 = npt.NDArray[np.int64]


@dataclass(frozen=True, slots=True)
class RollupChunk:
    """Copies of some reels as of a cut, as columns; entry i is reel `reel_ids[i]`."""

    reel_ids: I64
    totals: I64
    """Shape (reels, 4): views, likes, views removed, likes removed."""
    new_reels: npt.NDArray[np.bool_]
    """Not indexed in `shard_reels` yet."""
    buckets: DirtyBuckets
    bucket_bounds: I64
    """Reel i's buckets are rows bucket_bounds[i]:bucket_bounds[i + 1] of `buckets`."""
    viewers_changed: npt.NDArray[np.bool_]
    viewer_bytes: bytes
    viewer_bounds: I64
    """Reel i's viewer set (if changed) is viewer_bytes[viewer_bounds[i]:viewer_bounds[i + 1]]."""
    likes: dict[int, list[tuple[int, int, bool]]]
    """Changed like registers (user, ts ms, liked) by entry, for the reels that have any."""

    def __len__(self) -> int:
        return len(self.reel_ids)

    def rollups(self, start: int, stop: int) -> list[ReelRollup]:
        """The rows to write of entries start:stop."""
        reel_ids = self.reel_ids[start:stop].tolist()
        totals = self.totals[start:stop].tolist()
        changed = self.viewers_changed[start:stop].tolist()
        new_reels = self.new_reels[start:stop].tolist()
        bucket_bounds = self.bucket_bounds[start : stop + 1].tolist()
        first_bucket = bucket_bounds[0]
        buckets = self.buckets.tuples(first_bucket, bucket_bounds[-1])
        viewer_bounds = self.viewer_bounds[start : stop + 1].tolist()
        data = self.viewer_bytes
        rollups = []
        for offset, reel_id in enumerate(reel_ids):
            index = start + offset
            viewers = (
                data[viewer_bounds[offset] : viewer_bounds[offset + 1]] if changed[offset] else None
            )
            rollups.append(
                ReelRollup(
                    reel_id,
                    tuple(totals[offset]),
                    self.likes.get(index, []),
                    buckets[
                        bucket_bounds[offset] - first_bucket : bucket_bounds[offset + 1]
                        - first_bucket
                    ],
                    viewers,
                    new_reels[offset],
                )
            )
        return rollups


def take_rollups(reel_ids: list[int], state: ShardState, new_reels: Collection[int]) -> RollupChunk:
    """Copies the reels' totals and changed rows, and clears their dirty marks: a later
    change marks them again for the next snapshot. `new_reels`: those never written."""
    reels = [state.reels[reel_id] for reel_id in reel_ids]
    count = len(reels)
    slots = np.fromiter((reel.slot for reel in reels), dtype=np.int64, count=count)
    buckets = state.buckets.take_dirty_rows(slots)
    likes: dict[int, list[tuple[int, int, bool]]] = {}
    viewer_parts: list[bytes] = []
    viewers_changed = np.zeros(count, dtype=np.bool_)
    viewer_lengths = np.zeros(count, dtype=np.int64)
    for index, reel in enumerate(reels):
        if reel.dirty_users:
            like_states = reel.like_states or {}
            likes[index] = [(user, *like_states[user]) for user in reel.dirty_users]
            reel.dirty_users = NO_USERS
        if reel.viewers_dirty:
            data = reel.flush_viewers().to_bytes()
            viewer_parts.append(data)
            viewer_lengths[index] = len(data)
            viewers_changed[index] = True
            reel.viewers_dirty = False
    viewer_bounds = np.zeros(count + 1, dtype=np.int64)
    np.cumsum(viewer_lengths, out=viewer_bounds[1:])
    return RollupChunk(
        reel_ids=np.array(reel_ids, dtype=np.int64),
        totals=state.totals[slots],
        new_reels=np.fromiter(
            (reel_id in new_reels for reel_id in reel_ids), dtype=np.bool_, count=count
        ),
        buckets=buckets,
        bucket_bounds=np.searchsorted(buckets.owners, np.arange(count + 1)).astype(np.int64),
        viewers_changed=viewers_changed,
        viewer_bytes=b"".join(viewer_parts),
        viewer_bounds=viewer_bounds,
        likes=likes,
    )


@dataclass
class SnapshotJob:
    snapshot_id: int
    seqs: dict[str, int]
    # Copies made and not written yet (each as of the cut), oldest first; the first
    # `_written_of_first` entries of the first chunk are written. The rest of the cut's
    # reels are in `ShardState.uncopied`.
    unwritten: list[RollupChunk] = field(default_factory=list)
    unwritten_count: int = 0
    _written_of_first: int = 0
    # Reels whose copies Cassandra acknowledged. Only their ids are kept: under load a
    # job runs for minutes, and holding every written copy (sketches included) until the
    # job ended grew the counters' RSS through the whole of `make bench-counters`.
    written: array[int] = field(default_factory=lambda: array("q"))

    def add(self, chunk: RollupChunk) -> None:
        """Queues copies to be written after those already queued."""
        if len(chunk):
            self.unwritten.append(chunk)
            self.unwritten_count += len(chunk)

    def next_rollups(self, limit: int) -> list[ReelRollup]:
        """The rows of the first `limit` unwritten copies (they stay unwritten)."""
        rollups: list[ReelRollup] = []
        start = self._written_of_first
        for chunk in self.unwritten:
            if len(rollups) >= limit:
                break
            stop = min(len(chunk), start + limit - len(rollups))
            rollups += chunk.rollups(start, stop)
            start = 0
        return rollups

    def mark_written(self, count: int) -> None:
        """The first `count` unwritten copies are in Cassandra."""
        if count > self.unwritten_count:
            raise ValueError(f"{count} copies written, {self.unwritten_count} were unwritten")
        self.unwritten_count -= count
        while count:
            chunk, start = self.unwritten[0], self._written_of_first
            stop = min(len(chunk), start + count)
            self.written.frombytes(chunk.reel_ids[start:stop].tobytes())
            count -= stop - start
            if stop == len(chunk):
                del self.unwritten[0]
                self._written_of_first = 0
            else:
                self._written_of_first = stop

    def unwritten_reel_ids(self) -> list[int]:
        """Reels copied and not written yet, in writing order."""
        ids: list[int] = []
        start = self._written_of_first
        for chunk in self.unwritten:
            ids += chunk.reel_ids[start:].tolist()
            start = 0
        return ids

    def reel_ids(self) -> set[int]:
        """Every reel copied so far, written or not."""
        return {*self.written, *self.unwritten_reel_ids()}
