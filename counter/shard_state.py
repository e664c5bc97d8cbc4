"""The in-memory state of one counter shard and the pure rules that change it.

State is a deterministic function of the set of applied batches: views are sums, likes are
last-writer-wins registers per (reel, user) ordered by (client timestamp, liked), so the
same batches replayed in any order after a crash give the same totals.

Layout: each reel in memory has a slot. Its totals are a row of `ShardState.totals` and its
time buckets a slot of `ShardState.buckets` (counter/bucket_columns.py), so a batch's views
are applied with a few vectorised adds; the rest of a reel (like registers, distinct
viewers) is its `ReelState`.
"""

from __future__ import annotations

import itertools
import time
from array import array
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import cast

import numpy as np

from counter.bucket_columns import BucketColumns, BucketHorizons, BucketKey, BucketKeys
from counter.reel_records import ReelDelta, ReelRecord
from counter.unique_viewers import UniqueViewers
from protos import common_pb2, counter_pb2
from reelstream.sorted_arrays import sorted_distinct

MINUTE_MS = 60_000
HOUR_MS = 3_600_000
DAY_MS = 86_400_000
BUCKET_WIDTHS_MS: dict[str, int] = {"minute": MINUTE_MS, "hour": HOUR_MS, "day": DAY_MS}
# Row kinds inside a reel's partition of `reel_state`.
KIND_LIKE = 0
KIND_BY_WIDTH: dict[str, int] = {"minute": 1, "hour": 2, "day": 3}
# A reel's buffered viewer ids are merged once they reach its distinct viewers held
# exactly, at least VIEWER_BUFFER_MIN and at most VIEWER_BUFFER_LIMIT (see ReelState).
VIEWER_BUFFER_MIN = 16
VIEWER_BUFFER_LIMIT = 256
# Columns of `ShardState.totals`.
VIEWS, LIKES, VIEWS_REMOVED, LIKES_REMOVED = range(4)
# Slots a new shard state has room for, and how it grows when they run out: by a quarter,
# since every bucket column costs 17 bytes per slot, used or not. Ad hoc, 84,219 reels over
# 20 minutes of buckets: 1,198 bytes per reel when doubling, 986 by a quarter, and 975 for
# the per-reel dicts before.
INITIAL_SLOTS = 1024
GROWTH = 1.25


def bucket_keys(ts_ms: int) -> BucketKeys:
    """The (width, start ms) of the minute, hour and day buckets holding `ts_ms`."""
    return tuple((width, ts_ms - ts_ms % width_ms) for width, width_ms in BUCKET_WIDTHS_MS.items())


def bucket_horizons(now_ms: int, keep_ms: dict[str, int]) -> BucketHorizons:
    """The horizons `keep_ms` (per width, how long a bucket stays in memory) give now."""
    return {width: now_ms - keep for width, keep in keep_ms.items()}


def is_old(keys: BucketKeys, horizons: BucketHorizons) -> bool:
    """True if any of `keys` starts below its width's horizon."""
    return any(start < horizons.get(width, start) for width, start in keys)


NO_USERS: frozenset[int] = frozenset()


@dataclass(slots=True, eq=False)
class ReelState:
    """What a shard holds for one reel besides its totals and buckets (which are columns,
    at `slot`): like registers and distinct viewers.

    A shard holds up to `max_reels_in_memory` of these per logical shard, so their size is
    part of the counters' memory: rarely used parts (dirty marks, buffered viewers) stay
    shared empty values until a reel needs them."""

    slot: int
    # (client ts ms, liked) per user: the register value; a larger tuple wins. None until
    # the reel's first like (most reels have none, and an empty dict is 64 bytes).
    like_states: dict[int, tuple[int, bool]] | None = None
    # Like registers changed since the last snapshot.
    dirty_users: set[int] | frozenset[int] = NO_USERS
    # Distinct viewers; new ids wait in a buffer and are merged in bulk (cheaper per event).
    viewers: UniqueViewers = field(default_factory=UniqueViewers)
    # 8 bytes per id: a reel's ids wait here until `viewer_flush_at` or its next snapshot
    # copy, and under load snapshots take minutes, so as Python ints (~40 bytes each) the
    # buffers were most of the counters' RSS growth in `make bench-counters` (session 14).
    viewer_buffer: array[int] | None = None
    # As many ids as the reel's exact set holds (16 to 256): a buffer then never holds
    # more than the set it merges into, however often the same viewers come back (a
    # fixed 256 let a tail reel's buffer grow by the same few ids for minutes: 40 MiB of
    # repeats per shard after 30 passes over the benchmark's batches, session 24), and
    # a merge (a sort of set and buffer) still costs O(1) per buffered id.
    viewer_flush_at: int = VIEWER_BUFFER_MIN
    viewers_dirty: bool = False
    viewers_merged_at: float = 0.0

    def add_viewers(self, user_ids: bytes) -> None:
        """Buffers viewers given as native uint64s (the layout of an `array("Q")`)."""
        self.viewers_dirty = True
        buffer = self.viewer_buffer
        if buffer is None:
            self.viewer_buffer = buffer = array("Q")
        buffer.frombytes(user_ids)
        if len(buffer) >= self.viewer_flush_at:
            self.flush_viewers()

    def flush_viewers(self) -> UniqueViewers:
        if self.viewer_buffer:
            self.viewers.add_list(self.viewer_buffer)
            held = self.viewers.exact_ids()
            self.viewer_flush_at = (
                VIEWER_BUFFER_LIMIT
                if held is None
                else min(VIEWER_BUFFER_LIMIT, max(VIEWER_BUFFER_MIN, held))
            )
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


class ReelNotLoaded(RuntimeError):
    """A stored reel was used before the owner read it from Cassandra (a bug)."""


class ShardState:
    """Totals, like registers and time buckets of every reel a shard owns."""

    def __init__(self) -> None:
        self.reels: dict[int, ReelState] = {}
        # Per slot: views, likes, views removed, likes removed (see the module doc).
        self.totals = np.zeros((INITIAL_SLOTS, 4), dtype=np.int64)
        self.buckets = BucketColumns(INITIAL_SLOTS)
        self._free_slots: list[int] = []
        self._next_slot = 0
        # Reels stored in Cassandra and not read yet (the owner reads them on first use).
        # Reading or changing one of them here is a bug, and raises.
        self.unloaded: set[int] = set()
        # Per unloaded reel that replayed batches changed: their changes, one ReelDelta
        # per replay segment (see `replay_batch`), merged when the reel is read.
        self.partial: dict[int, list[ReelDelta]] = {}
        self.dirty: set[int] = set()
        # Copy-on-write for snapshots: reels of a cut snapshot whose values have not been
        # copied yet. Their first change calls `copy_before_change` (with every such reel
        # of a batch at once) so the copy still shows the values as of the cut.
        self.uncopied: set[int] = set()
        self.copy_before_change: Callable[[list[int]], object] | None = None

    def reel(self, reel_id: int) -> ReelState:
        """The reel's state for a change (created if new), copied first if a cut snapshot
        still needs its values (`apply_batch` does that for a whole batch at once)."""
        if reel_id in self.uncopied and self.copy_before_change is not None:
            self.copy_before_change([reel_id])
        return self.reels.get(reel_id) or self._new_reel(reel_id)

    def _new_reel(self, reel_id: int) -> ReelState:
        self._check_loaded(reel_id)
        if self._free_slots:
            slot = self._free_slots.pop()
        else:
            slot = self._next_slot
            self._next_slot += 1
            if slot == len(self.totals):
                self._grow(int(slot * GROWTH))
        state = self.reels[reel_id] = ReelState(slot)
        return state

    def _grow(self, capacity: int) -> None:
        totals = np.zeros((capacity, 4), dtype=np.int64)
        totals[: len(self.totals)] = self.totals
        self.totals = totals
        self.buckets.grow(capacity)

    def _check_loaded(self, reel_id: int) -> None:
        if reel_id in self.unloaded:
            raise ReelNotLoaded(f"reel {reel_id} is stored but was not loaded")

    def totals_of(self, reel_id: int) -> tuple[int, int, int, int]:
        """(views, likes, views removed, likes removed) of a reel in memory."""
        views, likes, views_removed, likes_removed = self.totals[self.reels[reel_id].slot].tolist()
        return views, likes, views_removed, likes_removed

    def missing_old_buckets(
        self, batch: counter_pb2.ApplyBatchRequest, horizons: BucketHorizons
    ) -> dict[int, set[BucketKey]]:
        """Per reel held here, the buckets older than the horizons that `batch` adds to
        and memory lacks: they may exist in Cassandra (retired), so their stored values
        must be restored before the batch is applied, or a snapshot would overwrite a
        stored bucket with the late events alone. Cheap when nothing in the batch is old
        (two C-level minimums)."""
        missing: dict[int, set[BucketKey]] = {}
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
                old = key[1] < horizons.get(key[0], key[1])
                if old and not self.buckets.is_present(reel.slot, key):
                    missing.setdefault(reel_id, set()).add(key)
        return missing

    def restore_buckets(self, reel_id: int, stored: dict[BucketKey, list[int]]) -> None:
        """Puts buckets read back from Cassandra into memory (those memory lacks)."""
        reel = self.reels.get(reel_id)
        if reel is None:
            return
        for key, (views, likes) in stored.items():
            if not self.buckets.is_present(reel.slot, key):
                self.buckets.put(reel.slot, key, views, likes)

    def retire_buckets(self, horizons: BucketHorizons) -> int:
        """Drops buckets older than their width's horizon once no change of them waits
        for a snapshot (Cassandra serves them); returns how many reels' buckets left.
        Without this a shard gains a minute of buckets per minute for as long as it runs."""
        return self.buckets.retire(horizons)

    def apply_batch(
        self, batch: counter_pb2.ApplyBatchRequest, only_reels: dict[int, bool] | None = None
    ) -> set[int]:
        """Applies a batch; returns the reels whose public counts may have changed.

        Args:
            batch: the edge's aggregated batch.
            only_reels: during recovery, a filter saying for each reel whether this batch
                is newer than the reel's snapshot (reels absent from it are applied).
        """
        if self.uncopied and self.copy_before_change is not None:
            cut = self.uncopied.intersection(itertools.chain(*_reel_columns(batch)))
            if cut:
                self.copy_before_change(list(cut))
        changed: set[int] = set()
        self._apply_views(batch, only_reels, changed)
        for reel_id, user_id, ts_ms, liked in zip(
            batch.like_reel_ids,
            batch.like_user_ids,
            batch.like_ts_ms,
            batch.like_values,
            strict=True,
        ):
            if only_reels is not None and not only_reels.get(reel_id, True):
                continue
            if self._apply_like(reel_id, user_id, ts_ms, liked):
                changed.add(reel_id)
            else:
                self.dirty.add(reel_id)
        self._apply_viewers(batch, only_reels, changed)
        self._apply_corrections(batch, only_reels, changed)
        self.dirty |= changed
        return changed

    def _apply_views(
        self,
        batch: counter_pb2.ApplyBatchRequest,
        only_reels: dict[int, bool] | None,
        changed: set[int],
    ) -> None:
        reel_ids: list[int] = list(batch.view_reel_ids)
        if not reel_ids:
            return
        minutes = np.array(batch.view_minutes, dtype=np.int64)
        counts = np.array(batch.view_counts, dtype=np.int64)
        if not len(reel_ids) == len(minutes) == len(counts):
            raise ValueError("view columns of different lengths")
        if only_reels is not None:
            kept = [only_reels.get(reel_id, True) for reel_id in reel_ids]
            if not all(kept):
                reel_ids = list(itertools.compress(reel_ids, kept))
                keep = np.array(kept, dtype=bool)
                minutes, counts = minutes[keep], counts[keep]
                if not reel_ids:
                    return
        reels = self.reels
        found = list(map(reels.get, reel_ids))
        if None in found:
            for index, state in enumerate(found):
                if state is None:
                    reel_id = reel_ids[index]
                    # A reel may appear once per minute: created by its first entry.
                    found[index] = reels.get(reel_id) or self._new_reel(reel_id)
        states = cast(list[ReelState], found)
        slots = np.array([state.slot for state in states], dtype=np.int64)
        np.add.at(self.totals[:, VIEWS], slots, counts)
        # A batch spans a minute or two: its buckets are added a minute at a time.
        first = minutes[0]
        if (minutes == first).all():
            self.buckets.add_views(bucket_keys(int(first) * MINUTE_MS), slots, counts)
        else:
            for minute in sorted_distinct(minutes).tolist():
                same = minutes == minute
                self.buckets.add_views(bucket_keys(minute * MINUTE_MS), slots[same], counts[same])
        changed.update(reel_ids)

    def _apply_like(self, reel_id: int, user_id: int, ts_ms: int, liked: bool) -> int:
        """Merges one like/unlike into the reel; returns the change of its like count."""
        return self._apply_like_to(
            self.reels.get(reel_id) or self._new_reel(reel_id), user_id, ts_ms, liked
        )

    def _apply_like_to(self, reel: ReelState, user_id: int, ts_ms: int, liked: bool) -> int:
        like_states = reel.like_states
        if like_states is None:
            like_states = reel.like_states = {}
        previous = like_states.get(user_id)
        candidate = (ts_ms, liked)
        if previous is not None and previous >= candidate:
            return 0
        like_states[user_id] = candidate
        reel.mark_user_dirty(user_id)
        was_liked = previous is not None and previous[1]
        delta = int(liked) - int(was_liked)
        if delta:
            self.totals[reel.slot, LIKES] += delta
            self.buckets.add(reel.slot, bucket_keys(ts_ms), 0, delta)
        return delta

    def _apply_viewers(
        self,
        batch: counter_pb2.ApplyBatchRequest,
        only_reels: dict[int, bool] | None,
        changed: set[int],
    ) -> None:
        # The edge sends viewer pairs sorted by reel: hand each reel its run of users.
        reel_ids = np.array(batch.viewer_reel_ids, dtype=np.uint64)
        user_ids = np.asarray(batch.viewer_user_ids, dtype=np.uint64).tobytes()
        if 8 * len(reel_ids) != len(user_ids):
            raise ValueError("viewer columns of different lengths")
        if not len(reel_ids):
            return
        bounds = (np.flatnonzero(reel_ids[1:] != reel_ids[:-1]) + 1).tolist()
        starts = [0, *bounds]
        runs = reel_ids[starts].tolist()
        if only_reels is not None:
            kept = [only_reels.get(reel_id, True) for reel_id in runs]
            runs = list(itertools.compress(runs, kept))
            starts = list(itertools.compress(starts, kept))
            ends = list(itertools.compress([*bounds, len(reel_ids)], kept))
        else:
            ends = [*bounds, len(reel_ids)]
        reels = self.reels
        # `ReelState.add_viewers` inlined: this loop runs once per reel of every batch.
        for reel_id, start, end in zip(runs, starts, ends, strict=True):
            reel = reels.get(reel_id) or self._new_reel(reel_id)
            buffer = reel.viewer_buffer
            if buffer is None:
                buffer = reel.viewer_buffer = array("Q")
            buffer.frombytes(user_ids[8 * start : 8 * end])
            reel.viewers_dirty = True
            if len(buffer) >= reel.viewer_flush_at:
                reel.flush_viewers()
        changed.update(runs)

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
            row = self.totals[(self.reels.get(reel_id) or self._new_reel(reel_id)).slot]
            row[VIEWS] += view_delta
            row[LIKES] += like_delta
            if mirror:
                row[VIEWS_REMOVED] -= view_delta
                row[LIKES_REMOVED] -= like_delta
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

    def load(self, reel_id: int, stored: ReelRecord | None, first_segment: int) -> None:
        """Puts a reel read from Cassandra (None: it has no row) into memory, with the
        replayed changes of segments `first_segment` onwards (the earlier ones are in its
        row already). A reel that had replayed changes is marked dirty, so a snapshot
        writes it (and rewrites a row of an unfinished snapshot) before they are trimmed."""
        if reel_id not in self.unloaded:
            return
        self.unloaded.discard(reel_id)
        reel = self._new_reel(reel_id)
        slot = reel.slot
        if stored is not None:
            self.totals[slot] = (
                stored.views,
                stored.likes,
                stored.views_removed,
                stored.likes_removed,
            )
            reel.like_states = stored.like_states or None
            reel.viewers = stored.viewers
            for key, (views, likes) in stored.buckets.items():
                self.buckets.put(slot, key, views, likes)
        deltas = self.partial.pop(reel_id, None)
        if deltas is not None:
            for delta in deltas[first_segment:]:
                self._merge(reel, delta)
            self.dirty.add(reel_id)

    def _merge(self, reel: ReelState, delta: ReelDelta) -> None:
        """Applies replayed changes to the stored state, as if applied to it."""
        row = self.totals[reel.slot]
        row += (delta.views, delta.likes, delta.views_removed, delta.likes_removed)
        for key, views in delta.view_buckets.items():
            self.buckets.add(reel.slot, (key,), views, 0)
        for user_id, ts_ms, liked in delta.like_events:
            self._apply_like_to(reel, user_id, ts_ms, liked)
        if delta.viewers:
            reel.add_viewers(array("Q", delta.viewers).tobytes())

    def evict_clean(self, count: int, keep: set[int], scan: int) -> int:
        """Drops up to `count` clean reels from memory, looking at most at `scan` reels in
        memory order (oldest first); returns how many it dropped. They join `unloaded`:
        Cassandra holds exactly their values, and the next use reads them back.

        Clean: no change since the last snapshot copied it (not dirty, not waiting for a
        copy) and not one of `keep` (the reels of a snapshot job still being written: their
        rows may not be in Cassandra yet). A reel in use is dirty most of the time, so this
        is a second-chance (CLOCK) order: a reel passed over moves to the back.
        """
        freed: list[int] = []
        for reel_id in list(itertools.islice(self.reels, scan)):
            if len(freed) >= count:
                break
            state = self.reels.pop(reel_id)
            if reel_id in self.dirty or reel_id in self.uncopied or reel_id in keep:
                self.reels[reel_id] = state
                continue
            self.unloaded.add(reel_id)
            freed.append(state.slot)
        if freed:
            slots = np.array(freed, dtype=np.int64)
            self.totals[slots] = 0
            self.buckets.clear(slots)
            self._free_slots.extend(freed)
        return len(freed)

    def counts(self, reel_ids: Iterable[int]) -> list[common_pb2.ReelCounts]:
        reel_ids = list(reel_ids)
        states = [self.reels.get(reel_id) for reel_id in reel_ids]
        held = [state.slot for state in states if state is not None]
        rows = iter(self.totals[held].tolist())
        result = []
        for reel_id, state in zip(reel_ids, states, strict=True):
            if state is None:
                self._check_loaded(reel_id)
                result.append(common_pb2.ReelCounts(reel_id=reel_id))
                continue
            views, likes, views_removed, likes_removed = next(rows)
            result.append(
                common_pb2.ReelCounts(
                    reel_id=reel_id,
                    views=views,
                    likes=likes,
                    views_removed=views_removed,
                    likes_removed=likes_removed,
                    unique_viewers=state.unique_viewers(),
                )
            )
        return result

    def liked(self, user_id: int, reel_ids: Iterable[int]) -> list[bool]:
        answers = []
        for reel_id in reel_ids:
            state = self.reels.get(reel_id)
            if state is None:
                self._check_loaded(reel_id)
            value = state.like_states.get(user_id) if state and state.like_states else None
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
        return self.buckets.rows(state.slot, width, from_ms, to_ms)


def _reel_columns(batch: counter_pb2.ApplyBatchRequest) -> tuple[Iterable[int], ...]:
    return (
        batch.view_reel_ids,
        batch.like_reel_ids,
        batch.viewer_reel_ids,
        batch.correction_reel_ids,
    )


def reels_of(batch: counter_pb2.ApplyBatchRequest) -> set[int]:
    """Every reel a batch changes."""
    return set().union(*_reel_columns(batch))
