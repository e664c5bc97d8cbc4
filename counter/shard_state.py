"""The in-memory state of one counter shard and the pure rules that change it.

State is a deterministic function of the set of applied batches: views are sums, likes are
last-writer-wins registers per (reel, user) ordered by (client timestamp, liked), so the
same batches replayed in any order after a crash give the same totals.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

from counter.unique_viewers import UniqueViewers
from protos import common_pb2, counter_pb2

MINUTE_MS = 60_000
HOUR_MS = 3_600_000
DAY_MS = 86_400_000
BUCKET_WIDTHS_MS: dict[str, int] = {"minute": MINUTE_MS, "hour": HOUR_MS, "day": DAY_MS}
# Row kinds inside a reel's partition of `reel_state`.
KIND_LIKE = 0
KIND_BY_WIDTH: dict[str, int] = {"minute": 1, "hour": 2, "day": 3}
VIEWER_BUFFER_LIMIT = 256


BucketKeys = tuple[tuple[str, int], ...]


def bucket_keys(ts_ms: int) -> BucketKeys:
    """The (width, start ms) of the minute, hour and day buckets holding `ts_ms`."""
    return tuple((width, ts_ms - ts_ms % width_ms) for width, width_ms in BUCKET_WIDTHS_MS.items())


@dataclass(slots=True)
class ReelState:
    """Everything a shard knows about one reel."""

    views: int = 0
    likes: int = 0
    views_removed: int = 0
    likes_removed: int = 0
    # (client ts ms, liked) per user: the register value; a larger tuple wins.
    like_states: dict[int, tuple[int, bool]] = field(default_factory=dict)
    # (width name, bucket start ms) -> [views, likes]
    buckets: dict[tuple[str, int], list[int]] = field(default_factory=dict)
    # Rows changed since the last snapshot.
    dirty_users: set[int] = field(default_factory=set)
    dirty_buckets: set[tuple[str, int]] = field(default_factory=set)
    # Distinct viewers; new ids wait in a buffer and are merged in bulk (cheaper per event).
    viewers: UniqueViewers = field(default_factory=UniqueViewers)
    viewer_buffer: list[int] = field(default_factory=list)
    viewers_dirty: bool = False
    viewers_merged_at: float = 0.0

    def add_viewers(self, user_ids: list[int]) -> None:
        self.viewer_buffer.extend(user_ids)
        self.viewers_dirty = True
        if len(self.viewer_buffer) >= VIEWER_BUFFER_LIMIT:
            self.flush_viewers()

    def flush_viewers(self) -> UniqueViewers:
        if self.viewer_buffer:
            self.viewers.add_list(self.viewer_buffer)
            self.viewer_buffer = []
        self.viewers_merged_at = time.monotonic()
        return self.viewers

    def unique_viewers(self) -> int:
        """Distinct viewers, merging buffered ids at most once a second per reel (a merge
        costs a sort or a sketch update; reads come far more often than that)."""
        if self.viewer_buffer and time.monotonic() - self.viewers_merged_at >= 1.0:
            self.flush_viewers()
        return self.viewers.count()

    def add_bucket(self, ts_ms: int, views: int, likes: int) -> None:
        self.add_to_buckets(bucket_keys(ts_ms), views, likes)

    def add_to_buckets(self, keys: BucketKeys, views: int, likes: int) -> None:
        buckets = self.buckets
        for key in keys:
            slot = buckets.get(key)
            if slot is None:
                buckets[key] = [views, likes]
            else:
                slot[0] += views
                slot[1] += likes
        self.dirty_buckets.update(keys)

    def to_counts(self, reel_id: int) -> common_pb2.ReelCounts:
        return common_pb2.ReelCounts(
            reel_id=reel_id,
            views=self.views,
            likes=self.likes,
            views_removed=self.views_removed,
            likes_removed=self.likes_removed,
            unique_viewers=self.unique_viewers(),
        )


def apply_like(reel: ReelState, user_id: int, ts_ms: int, liked: bool) -> int:
    """Merges one like/unlike into the reel; returns the change of its like count."""
    previous = reel.like_states.get(user_id)
    candidate = (ts_ms, liked)
    if previous is not None and previous >= candidate:
        return 0
    reel.like_states[user_id] = candidate
    reel.dirty_users.add(user_id)
    was_liked = previous is not None and previous[1]
    delta = int(liked) - int(was_liked)
    if delta:
        reel.likes += delta
        reel.add_bucket(ts_ms, 0, delta)
    return delta


class ShardState:
    """Totals, like registers and time buckets of every reel a shard owns."""

    def __init__(self) -> None:
        self.reels: dict[int, ReelState] = {}
        self.dirty: set[int] = set()
        # Copy-on-write for snapshots: reels of a cut snapshot whose values have not been
        # copied yet. Their first change calls `copy_before_change` so the copy still shows
        # the values as of the cut.
        self.uncopied: set[int] = set()
        self.copy_before_change: Callable[[int], object] | None = None

    def reel(self, reel_id: int) -> ReelState:
        """The reel's state for a change (created if new); every change goes through here."""
        if reel_id in self.uncopied and self.copy_before_change is not None:
            self.copy_before_change(reel_id)
        state = self.reels.get(reel_id)
        if state is None:
            state = self.reels[reel_id] = ReelState()
        return state

    def apply_batch(
        self, batch: counter_pb2.ApplyBatchRequest, only_reels: dict[int, bool] | None = None
    ) -> set[int]:
        """Applies a batch; returns the reels whose public counts may have changed.

        Args:
            batch: the edge's aggregated batch.
            only_reels: during recovery, a filter saying for each reel whether this batch
                is newer than the reel's snapshot (reels absent from it are applied).
        """
        changed: set[int] = set()
        # A batch spans a minute or two: its bucket keys are built once per minute.
        keys_by_minute: dict[int, BucketKeys] = {}
        for reel_id, minute, count in zip(
            batch.view_reel_ids, batch.view_minutes, batch.view_counts, strict=True
        ):
            if only_reels is not None and not only_reels.get(reel_id, True):
                continue
            keys = keys_by_minute.get(minute)
            if keys is None:
                keys = keys_by_minute[minute] = bucket_keys(minute * MINUTE_MS)
            reel = self.reel(reel_id)
            reel.views += count
            reel.add_to_buckets(keys, count, 0)
            changed.add(reel_id)
        for reel_id, user_id, ts_ms, liked in zip(
            batch.like_reel_ids,
            batch.like_user_ids,
            batch.like_ts_ms,
            batch.like_values,
            strict=True,
        ):
            if only_reels is not None and not only_reels.get(reel_id, True):
                continue
            if apply_like(self.reel(reel_id), user_id, ts_ms, liked):
                changed.add(reel_id)
            else:
                self.dirty.add(reel_id)
        self._apply_viewers(batch, only_reels, changed)
        self._apply_corrections(batch, only_reels, changed)
        self.dirty |= changed
        return changed

    def _apply_viewers(
        self,
        batch: counter_pb2.ApplyBatchRequest,
        only_reels: dict[int, bool] | None,
        changed: set[int],
    ) -> None:
        # The edge sends viewer pairs sorted by reel: hand each reel its run of users.
        reel_ids, user_ids = batch.viewer_reel_ids, batch.viewer_user_ids
        start, total = 0, len(reel_ids)
        while start < total:
            reel_id = reel_ids[start]
            end = start + 1
            while end < total and reel_ids[end] == reel_id:
                end += 1
            if only_reels is None or only_reels.get(reel_id, True):
                self.reel(reel_id).add_viewers(user_ids[start:end])
                changed.add(reel_id)
            start = end

    def _apply_corrections(
        self,
        batch: counter_pb2.ApplyBatchRequest,
        only_reels: dict[int, bool] | None,
        changed: set[int],
    ) -> None:
        mirror = batch.correction_moves_to_removed
        for reel_id, view_delta, like_delta in zip(
            batch.correction_reel_ids,
            batch.correction_view_deltas,
            batch.correction_like_deltas,
            strict=True,
        ):
            if only_reels is not None and not only_reels.get(reel_id, True):
                continue
            reel = self.reel(reel_id)
            reel.views += view_delta
            reel.likes += like_delta
            if mirror:
                reel.views_removed -= view_delta
                reel.likes_removed -= like_delta
            changed.add(reel_id)

    def counts(self, reel_ids: Iterable[int]) -> list[common_pb2.ReelCounts]:
        result = []
        for reel_id in reel_ids:
            state = self.reels.get(reel_id)
            result.append(
                state.to_counts(reel_id) if state else common_pb2.ReelCounts(reel_id=reel_id)
            )
        return result

    def liked(self, user_id: int, reel_ids: Iterable[int]) -> list[bool]:
        answers = []
        for reel_id in reel_ids:
            state = self.reels.get(reel_id)
            value = state.like_states.get(user_id) if state else None
            answers.append(bool(value and value[1]))
        return answers

    def time_series(
        self, reel_id: int, width: str, from_ms: int, to_ms: int
    ) -> list[tuple[int, int, int]]:
        """(start ms, views, likes) of the reel's buckets of `width` in [from_ms, to_ms)."""
        state = self.reels.get(reel_id)
        if state is None:
            return []
        rows = [
            (start, values[0], values[1])
            for (bucket_width, start), values in state.buckets.items()
            if bucket_width == width and from_ms <= start < to_ms
        ]
        rows.sort()
        return rows
