"""The in-memory state of one counter shard and the pure rules that change it.

State is a deterministic function of the set of applied batches: views are sums, likes are
last-writer-wins registers per (reel, user) ordered by (client timestamp, liked), so the
same batches replayed in any order after a crash give the same totals.
"""

from __future__ import annotations

import itertools
import time
from array import array
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


BucketKey = tuple[str, int]
"""(width name, bucket start ms)."""
BucketKeys = tuple[BucketKey, ...]


def bucket_keys(ts_ms: int) -> BucketKeys:
    """The (width, start ms) of the minute, hour and day buckets holding `ts_ms`."""
    return tuple((width, ts_ms - ts_ms % width_ms) for width, width_ms in BUCKET_WIDTHS_MS.items())


BucketHorizons = dict[str, int]
"""Per width, the bucket start (ms) below which a clean bucket is kept only in Cassandra."""


def bucket_horizons(now_ms: int, keep_ms: dict[str, int]) -> BucketHorizons:
    """The horizons `keep_ms` (per width, how long a bucket stays in memory) give now."""
    return {width: now_ms - keep for width, keep in keep_ms.items()}


def is_old(keys: BucketKeys, horizons: BucketHorizons) -> bool:
    """True if any of `keys` starts below its width's horizon."""
    return any(start < horizons.get(width, start) for width, start in keys)


NO_USERS: frozenset[int] = frozenset()


@dataclass(slots=True)
class ReelState:
    """Everything a shard knows about one reel.

    A shard holds up to `max_reels_in_memory` of these per logical shard, so their size is
    the counters' memory: rarely used parts (dirty marks, like buckets, buffered viewers)
    stay shared empty values until a reel needs them, and a bucket is a dict entry, not
    an object of its own."""

    views: int = 0
    likes: int = 0
    views_removed: int = 0
    likes_removed: int = 0
    # (client ts ms, liked) per user: the register value; a larger tuple wins.
    like_states: dict[int, tuple[int, bool]] = field(default_factory=dict)
    # Views per held (width name, bucket start ms); a bucket is held when its key is here.
    buckets: dict[BucketKey, int] = field(default_factory=dict)
    # Likes per held bucket, for the (few) buckets whose likes are not 0.
    like_buckets: dict[BucketKey, int] | None = None
    # Rows changed since the last snapshot.
    dirty_users: set[int] | frozenset[int] = NO_USERS
    # A tuple: most reels change a minute or two between snapshots (3-6 keys), and a
    # set cost 216 bytes, most of the shards' growth between two snapshots.
    dirty_buckets: BucketKeys = ()
    # Distinct viewers; new ids wait in a buffer and are merged in bulk (cheaper per event).
    viewers: UniqueViewers = field(default_factory=UniqueViewers)
    # 8 bytes per id: a reel's ids wait here until 256 or its next snapshot copy, and
    # under load snapshots take minutes, so as Python ints (~40 bytes each) the buffers
    # were most of the counters' RSS growth in `make bench-counters` (session 14).
    viewer_buffer: array[int] | None = None
    viewers_dirty: bool = False
    viewers_merged_at: float = 0.0

    def add_viewers(self, user_ids: list[int]) -> None:
        self.viewers_dirty = True
        buffer = self.viewer_buffer
        if buffer is None:
            self.viewer_buffer = buffer = array("Q", user_ids)
        else:
            buffer.extend(user_ids)
        if len(buffer) >= VIEWER_BUFFER_LIMIT:
            self.flush_viewers()

    def flush_viewers(self) -> UniqueViewers:
        if self.viewer_buffer:
            self.viewers.add_list(self.viewer_buffer)
        self.viewer_buffer = None
        self.viewers_merged_at = time.monotonic()
        return self.viewers

    def unique_viewers(self) -> int:
        """Distinct viewers, merging buffered ids at most once a second per reel (a merge
        costs a sort or a sketch update; reads come far more often than that)."""
        if self.viewer_buffer and time.monotonic() - self.viewers_merged_at >= 1.0:
            self.flush_viewers()
        return self.viewers.count()

    def mark_user_dirty(self, user_id: int) -> None:
        dirty = self.dirty_users
        if isinstance(dirty, set):
            dirty.add(user_id)
        else:
            self.dirty_users = {user_id}

    def clear_dirty(self) -> None:
        """A snapshot copied every changed row."""
        self.dirty_users = NO_USERS
        self.dirty_buckets = ()

    def bucket(self, key: BucketKey) -> tuple[int, int]:
        """(views, likes) of a held bucket."""
        like_buckets = self.like_buckets
        return self.buckets[key], (like_buckets.get(key, 0) if like_buckets else 0)

    def put_bucket(self, key: BucketKey, views: int, likes: int) -> None:
        """Holds a bucket with these values (read from Cassandra), replacing what was held."""
        self.buckets[key] = views
        if likes:
            if self.like_buckets is None:
                self.like_buckets = {}
            self.like_buckets[key] = likes
        elif self.like_buckets:
            self.like_buckets.pop(key, None)

    def add_bucket(self, ts_ms: int, views: int, likes: int) -> None:
        self.add_to_buckets(bucket_keys(ts_ms), views, likes)

    def add_to_buckets(self, keys: BucketKeys, views: int, likes: int) -> None:
        buckets = self.buckets
        for key in keys:
            buckets[key] = buckets.get(key, 0) + views
        if likes:
            like_buckets = self.like_buckets
            if like_buckets is None:
                like_buckets = self.like_buckets = {}
            for key in keys:
                like_buckets[key] = like_buckets.get(key, 0) + likes
        dirty = self.dirty_buckets
        # Keys are shared per batch and minute, so `in` mostly matches on identity.
        for key in keys:
            if key not in dirty:
                self.dirty_buckets = dirty + tuple(k for k in keys if k not in dirty)
                break

    def retire_buckets(self, horizons: BucketHorizons) -> int:
        """Drops clean buckets older than their width's horizon (a snapshot wrote them,
        Cassandra serves them); returns how many. Without this a reel gains a minute
        bucket per active minute for as long as the process runs (`make soak`)."""
        old = [
            key
            for key in self.buckets
            if key[1] < horizons.get(key[0], key[1]) and key not in self.dirty_buckets
        ]
        if not old:
            return 0
        for key in old:
            del self.buckets[key]
        # Copied after every retirement: deleted entries stay in a dict's table as dummies,
        # so a reel gaining a minute and retiring one each minute made CPython resize its
        # 18-entry dict to 64 slots (632 -> 1,168 bytes), and every counter's RSS stepped
        # up by ~50 MiB at its first retirement in `make soak` (session 15). A copy is
        # sized for what is left.
        self.buckets = dict(self.buckets)
        like_buckets = self.like_buckets
        if like_buckets:
            for key in old:
                like_buckets.pop(key, None)
            self.like_buckets = dict(like_buckets) or None
        return len(old)

    def to_counts(self, reel_id: int) -> common_pb2.ReelCounts:
        return common_pb2.ReelCounts(
            reel_id=reel_id,
            views=self.views,
            likes=self.likes,
            views_removed=self.views_removed,
            likes_removed=self.likes_removed,
            unique_viewers=self.unique_viewers(),
        )


@dataclass(slots=True)
class ReelDelta:
    """What replayed batches changed in a reel whose stored row was not read yet: sums
    for views, buckets, corrections and viewers, and the like events themselves (a like's
    effect depends on the stored register of its user)."""

    views: int = 0
    likes: int = 0
    views_removed: int = 0
    likes_removed: int = 0
    view_buckets: dict[tuple[str, int], int] = field(default_factory=dict)
    like_events: list[tuple[int, int, bool]] = field(default_factory=list)
    viewers: list[int] = field(default_factory=list)

    def merge_into(self, reel: ReelState) -> None:
        """Applies these changes to the stored state, as if they had been applied to it."""
        reel.views += self.views
        reel.likes += self.likes
        reel.views_removed += self.views_removed
        reel.likes_removed += self.likes_removed
        for key, views in self.view_buckets.items():
            reel.add_to_buckets((key,), views, 0)
        for user_id, ts_ms, liked in self.like_events:
            apply_like(reel, user_id, ts_ms, liked)
        if self.viewers:
            reel.add_viewers(self.viewers)


def apply_like(reel: ReelState, user_id: int, ts_ms: int, liked: bool) -> int:
    """Merges one like/unlike into the reel; returns the change of its like count."""
    previous = reel.like_states.get(user_id)
    candidate = (ts_ms, liked)
    if previous is not None and previous >= candidate:
        return 0
    reel.like_states[user_id] = candidate
    reel.mark_user_dirty(user_id)
    was_liked = previous is not None and previous[1]
    delta = int(liked) - int(was_liked)
    if delta:
        reel.likes += delta
        reel.add_bucket(ts_ms, 0, delta)
    return delta


class ReelNotLoaded(RuntimeError):
    """A stored reel was used before the owner read it from Cassandra (a bug)."""


class ShardState:
    """Totals, like registers and time buckets of every reel a shard owns."""

    def __init__(self) -> None:
        self.reels: dict[int, ReelState] = {}
        # Reels stored in Cassandra and not read yet (the owner reads them on first use).
        # Reading or changing one of them here is a bug, and raises.
        self.unloaded: set[int] = set()
        # Per unloaded reel that replayed batches changed: their changes, one ReelDelta
        # per replay segment (see `replay_batch`), merged when the reel is read.
        self.partial: dict[int, list[ReelDelta]] = {}
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
            self._check_loaded(reel_id)
            state = self.reels[reel_id] = ReelState()
        return state

    def _check_loaded(self, reel_id: int) -> None:
        if reel_id in self.unloaded:
            raise ReelNotLoaded(f"reel {reel_id} is stored but was not loaded")

    def missing_old_buckets(
        self, batch: counter_pb2.ApplyBatchRequest, horizons: BucketHorizons
    ) -> dict[int, set[tuple[str, int]]]:
        """Per reel held here, the buckets older than the horizons that `batch` adds to
        and memory lacks: they may exist in Cassandra (retired), so their stored values
        must be restored before the batch is applied, or a snapshot would overwrite a
        stored bucket with the late events alone. Cheap when nothing in the batch is old
        (two C-level minimums)."""
        missing: dict[int, set[tuple[str, int]]] = {}
        oldest: list[int] = []
        if batch.view_minutes:
            oldest.append(min(batch.view_minutes) * MINUTE_MS)
        if batch.like_ts_ms:
            oldest.append(min(batch.like_ts_ms))
        if not oldest or not is_old(bucket_keys(min(oldest)), horizons):
            return missing
        entries = [
            (reel_id, minute * MINUTE_MS)
            for reel_id, minute in zip(batch.view_reel_ids, batch.view_minutes, strict=True)
        ]
        entries += list(zip(batch.like_reel_ids, batch.like_ts_ms, strict=True))
        for reel_id, ts_ms in entries:
            reel = self.reels.get(reel_id)
            if reel is None:
                # No rows, or not read yet: a replayed change then waits in a ReelDelta,
                # merged into the whole stored partition when the reel is read.
                continue
            for key in bucket_keys(ts_ms):
                if key[1] < horizons.get(key[0], key[1]) and key not in reel.buckets:
                    missing.setdefault(reel_id, set()).add(key)
        return missing

    def restore_buckets(self, reel_id: int, stored: dict[tuple[str, int], list[int]]) -> None:
        """Puts buckets read back from Cassandra into memory (those memory lacks)."""
        reel = self.reels.get(reel_id)
        if reel is None:
            return
        for key, values in stored.items():
            if key not in reel.buckets:
                reel.put_bucket(key, *values)

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

    def replay_batch(
        self, batch: counter_pb2.ApplyBatchRequest, segment: int, segments: int
    ) -> None:
        """Applies a batch during recovery: to reels in memory as usual, and as a
        ReelDelta to reels not read yet, so a takeover reads no reel.

        Which of a reel's deltas apply depends on the snapshot that wrote its row, known
        only once it is read: `segment` (0 .. segments-1) says which unfinished snapshots
        already include this batch (see `load`)."""
        if not self.unloaded:
            self.apply_batch(batch)
            return
        unloaded = self.unloaded
        self.apply_batch(
            batch, only_reels={reel_id: reel_id not in unloaded for reel_id in reels_of(batch)}
        )

        def delta(reel_id: int) -> ReelDelta:
            deltas = self.partial.get(reel_id)
            if deltas is None:
                deltas = self.partial[reel_id] = [ReelDelta() for _ in range(segments)]
            return deltas[segment]

        for reel_id, minute, count in zip(
            batch.view_reel_ids, batch.view_minutes, batch.view_counts, strict=True
        ):
            if reel_id in unloaded:
                d = delta(reel_id)
                d.views += count
                for key in bucket_keys(minute * MINUTE_MS):
                    d.view_buckets[key] = d.view_buckets.get(key, 0) + count
        for reel_id, user_id, ts_ms, liked in zip(
            batch.like_reel_ids,
            batch.like_user_ids,
            batch.like_ts_ms,
            batch.like_values,
            strict=True,
        ):
            if reel_id in unloaded:
                delta(reel_id).like_events.append((user_id, ts_ms, liked))
        for reel_id, user_id in zip(batch.viewer_reel_ids, batch.viewer_user_ids, strict=True):
            if reel_id in unloaded:
                delta(reel_id).viewers.append(user_id)
        mirror = batch.correction_moves_to_removed
        for reel_id, view_delta, like_delta in zip(
            batch.correction_reel_ids,
            batch.correction_view_deltas,
            batch.correction_like_deltas,
            strict=True,
        ):
            if reel_id in unloaded:
                d = delta(reel_id)
                d.views += view_delta
                d.likes += like_delta
                if mirror:
                    d.views_removed -= view_delta
                    d.likes_removed -= like_delta

    def load(self, reel_id: int, stored: ReelState | None, first_segment: int) -> None:
        """Puts a reel read from Cassandra (None: it has no row) into memory, with the
        replayed changes of segments `first_segment` onwards (the earlier ones are in its
        row already). A reel that had replayed changes is marked dirty, so a snapshot
        writes it (and rewrites a row of an unfinished snapshot) before they are trimmed."""
        if reel_id not in self.unloaded:
            return
        reel = stored or ReelState()
        deltas = self.partial.pop(reel_id, None)
        if deltas is not None:
            for delta in deltas[first_segment:]:
                delta.merge_into(reel)
            self.dirty.add(reel_id)
        self.reels[reel_id] = reel
        self.unloaded.discard(reel_id)

    def evict_clean(self, count: int, keep: set[int], scan: int) -> int:
        """Drops up to `count` clean reels from memory, looking at most at `scan` reels in
        memory order (oldest first); returns how many it dropped. They join `unloaded`:
        Cassandra holds exactly their values, and the next use reads them back.

        Clean: no change since the last snapshot copied it (not dirty, not waiting for a
        copy) and not one of `keep` (the reels of a snapshot job still being written: their
        rows may not be in Cassandra yet). A reel in use is dirty most of the time, so this
        is a second-chance (CLOCK) order: a reel passed over moves to the back.
        """
        evicted = 0
        for reel_id in list(itertools.islice(self.reels, scan)):
            if evicted >= count:
                break
            state = self.reels.pop(reel_id)
            if reel_id in self.dirty or reel_id in self.uncopied or reel_id in keep:
                self.reels[reel_id] = state
                continue
            self.unloaded.add(reel_id)
            evicted += 1
        return evicted

    def counts(self, reel_ids: Iterable[int]) -> list[common_pb2.ReelCounts]:
        result = []
        for reel_id in reel_ids:
            state = self.reels.get(reel_id)
            if state is None:
                self._check_loaded(reel_id)
                result.append(common_pb2.ReelCounts(reel_id=reel_id))
            else:
                result.append(state.to_counts(reel_id))
        return result

    def liked(self, user_id: int, reel_ids: Iterable[int]) -> list[bool]:
        answers = []
        for reel_id in reel_ids:
            state = self.reels.get(reel_id)
            if state is None:
                self._check_loaded(reel_id)
            value = state.like_states.get(user_id) if state else None
            answers.append(bool(value and value[1]))
        return answers

    def time_series(
        self, reel_id: int, width: str, from_ms: int, to_ms: int
    ) -> list[tuple[int, int, int]]:
        """(start ms, views, likes) of the reel's buckets of `width` in [from_ms, to_ms)."""
        state = self.reels.get(reel_id)
        if state is None:
            self._check_loaded(reel_id)
            return []
        rows = [
            (key[1], *state.bucket(key))
            for key in state.buckets
            if key[0] == width and from_ms <= key[1] < to_ms
        ]
        rows.sort()
        return rows


def reels_of(batch: counter_pb2.ApplyBatchRequest) -> set[int]:
    """Every reel a batch changes."""
    return (
        set(batch.view_reel_ids)
        | set(batch.like_reel_ids)
        | set(batch.viewer_reel_ids)
        | set(batch.correction_reel_ids)
    )
