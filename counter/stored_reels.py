"""The part of a counter shard's state that lives only in Cassandra, and its reads.

- Reels not read since a takeover (`ShardState.unloaded`): recovery reads none, replayed
  batches wait as deltas (`ShardState.replay_batch`), and a reel is read on first use,
  once however many callers wait (`ensure_loaded`).
- Time buckets retired from memory once a snapshot wrote them (`retire_old_buckets`):
  read back for late events (`restore_old_buckets`) and merged into time series.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable, Iterable

from prometheus_client import Counter, Gauge

from counter.bucket_columns import BucketHorizons
from counter.config import CounterConfig
from counter.shard_state import ShardState, bucket_horizons, reels_of
from counter.store import CounterStore, now_ms
from protos import counter_pb2
from reelstream.cassandra_client import StoreUnavailable

# Per logical shard: a process hosts several, and one unlabelled gauge showed whichever
# shard set it last. Sum over `shard` for a process's figure.
REELS = Gauge("counter_reels", "Reels held in memory", ["shard"])
UNLOADED_REELS = Gauge(
    "counter_reels_unloaded",
    "Stored reels of the served shards not read since the takeover",
    ["shard"],
)
REELS_LOADED = Counter("counter_reels_loaded_total", "Stored reels read on first use")
REELS_EVICTED = Counter(
    "counter_reels_evicted_total", "Cold reels dropped from memory (read back on next use)"
)
BUCKETS_RETIRED = Counter(
    "counter_buckets_retired_total", "Time buckets dropped from memory (Cassandra keeps them)"
)
BUCKETS_RESTORED = Counter(
    "counter_buckets_restored_total", "Retired time buckets read back for late events"
)
# How often a bucket read that must precede applying a committed batch is retried.
RESTORE_RETRY_S = 0.2
# Reels with replayed changes read together before a snapshot (see `load_changed`).
LOAD_CHUNK = 256
# Most reels dropped from memory in one go (see `evict_cold`).
EVICT_SLICE = 4096


class StoredReels:
    """Reads one shard's reels and buckets back from Cassandra into its `ShardState`."""

    def __init__(self, config: CounterConfig, store: CounterStore, state: ShardState) -> None:
        self._config = config
        self._store = store
        self.state = state
        self._shard_label = str(store.shard)
        # Set when an eviction pass found no clean reel: reels only become clean when a
        # snapshot completes, so passes wait for the next one (`snapshot_completed`).
        self._nothing_clean = False
        # Reels being read on first use, each with the read that brings it.
        self._loading: dict[int, asyncio.Task[None]] = {}
        # Unfinished snapshots found at recovery -> their order (CounterShard._recover).
        self.unfinished: dict[int, int] = {}

    def publish_sizes(self) -> None:
        """Sets this shard's `counter_reels` and `counter_reels_unloaded`."""
        REELS.labels(self._shard_label).set(len(self.state.reels))
        UNLOADED_REELS.labels(self._shard_label).set(len(self.state.unloaded))

    def forget_sizes(self) -> None:
        """Removes this shard's gauges (the process no longer serves it)."""
        for gauge in (REELS, UNLOADED_REELS):
            with contextlib.suppress(KeyError):
                gauge.remove(self._shard_label)

    async def load_changed(self) -> None:
        """Reads every reel that still has replayed changes, a chunk at a time, so a caller
        needing one of them waits for its chunk at most, and reads of other reels are not
        queued behind the whole lot."""
        changed_unread = list(self.state.partial)
        for start in range(0, len(changed_unread), LOAD_CHUNK):
            await self.ensure_loaded(changed_unread[start : start + LOAD_CHUNK])

    async def ensure_loaded(self, reel_ids: Iterable[int]) -> None:
        """Reads the stored reels among `reel_ids` that are not in memory (left there by
        recovery, or evicted as cold), once however many callers want them at the same
        time. When this returns they are all in memory: the caller may use them until it
        next awaits something (a cold reel may be evicted again after that).

        Raises:
            StoreUnavailable: a read failed (nothing is half-loaded; the caller retries).
        """
        reel_ids = list(reel_ids)
        # Checked again after every wait: cold reels may leave memory meanwhile (the
        # committer evicts between groups), and the caller relies on every one of them
        # being in memory when this returns.
        while self.state.unloaded:
            wanted = self.state.unloaded.intersection(reel_ids)
            if not wanted:
                return
            new = [reel_id for reel_id in wanted if reel_id not in self._loading]
            if new:
                load = asyncio.create_task(self._load(new), name=f"load-reels-{self._store.shard}")
                for reel_id in new:
                    self._loading[reel_id] = load
            loads = {self._loading[reel_id] for reel_id in wanted if reel_id in self._loading}
            for load in loads:
                # Shielded: a caller giving up (deadline) must not cancel others' load.
                await asyncio.shield(load)

    async def _load(self, reel_ids: list[int]) -> None:
        try:
            # A reel with replayed changes is read whole: they may add to buckets older
            # than the horizons, which must start from their stored values.
            with_changes = [r for r in reel_ids if r in self.state.partial]
            plain = [r for r in reel_ids if r not in self.state.partial]
            read_plain, read_whole = await asyncio.gather(
                self._store.read_reels(plain, self.horizons()),
                self._store.read_reels(with_changes),
            )
            stored = [*read_plain, *read_whole]
            found = {reel.reel_id: reel for reel in stored}
            for reel_id in reel_ids:
                # No row: indexed, then the process died before writing it.
                reel = found.get(reel_id)
                written_by = self.unfinished.get(reel.snapshot_id) if reel else None
                first_segment = 0 if written_by is None else written_by + 1
                self.state.load(reel_id, reel.record if reel else None, first_segment)
            REELS_LOADED.inc(len(stored))
            self.publish_sizes()
        finally:
            for reel_id in reel_ids:
                self._loading.pop(reel_id, None)

    def horizons(self) -> BucketHorizons:
        return bucket_horizons(now_ms(), self._config.bucket_memory_ms)

    async def prepare_apply(self, batch: counter_pb2.ApplyBatchRequest, give_up_s: float) -> None:
        """Makes a committed batch applicable: its reels in memory (one may have been
        evicted since the batch arrived), then its late events' retired buckets. The
        caller applies the batch right after, without yielding.

        Raises:
            StoreUnavailable: the reads still failed after `give_up_s` of retries.
        """
        if self.state.unloaded:
            reel_ids = reels_of(batch)
            loop = asyncio.get_running_loop()
            deadline = loop.time() + give_up_s
            while True:
                try:
                    await self.ensure_loaded(reel_ids)
                    break
                except StoreUnavailable:
                    if loop.time() >= deadline:
                        raise
                    await asyncio.sleep(RESTORE_RETRY_S)
        await self.restore_old_buckets(batch, give_up_s)

    def evict_cold(self, job_reels: Callable[[], set[int]]) -> None:
        """Drops clean reels beyond `max_reels_in_memory` (ShardState.evict_clean), a
        slice at a time so a large excess never stalls the event loop; `job_reels` gives
        the reels of the snapshot job being written, which must stay. Only the committer
        calls this, between groups, so no committed batch finds its reels gone."""
        limit = self._config.max_reels_in_memory
        excess = len(self.state.reels) - limit
        if limit <= 0 or excess <= 0 or self._nothing_clean:
            return
        # Down to 95 % of the limit, so eviction runs in bursts, not every group.
        count = min(excess + limit // 20, EVICT_SLICE)
        evicted = self.state.evict_clean(count, job_reels(), scan=4 * EVICT_SLICE)
        # Reels become clean only when a snapshot completes, so after a pass that found
        # none, the next waits for that (clean reels beyond this pass's scan wait too, at
        # most one snapshot job). Rescanning after every group cost a soak's counters ~18 %
        # of their CPU (py-spy, 40,000-reel limit, every reel in the running job or
        # changed since).
        self._nothing_clean = evicted == 0
        REELS_EVICTED.inc(evicted)
        self.publish_sizes()

    def snapshot_completed(self) -> None:
        """A completed snapshot made the reels it wrote clean (unless changed since):
        eviction may look again."""
        self._nothing_clean = False

    async def restore_old_buckets(
        self, batch: counter_pb2.ApplyBatchRequest, give_up_s: float = 0.0
    ) -> None:
        """Reads back the retired buckets `batch` adds late events to, so the batch adds to
        their stored values. Every read completes before any bucket is put back, and the
        caller applies the batch right after, without yielding: a retirement sweep in
        between could otherwise drop a restored bucket again.

        Raises:
            StoreUnavailable: the reads still failed after `give_up_s` of retries.
        """
        missing = self.state.missing_old_buckets(batch, self.horizons())
        if not missing:
            return
        wanted = [
            (reel_id, width, sorted(start for w, start in keys if w == width))
            for reel_id, keys in missing.items()
            for width in {w for w, _ in keys}
        ]
        loop = asyncio.get_running_loop()
        deadline = loop.time() + give_up_s
        while True:
            try:
                stored = await asyncio.gather(
                    *(
                        self._store.read_buckets(reel_id, width, starts[0], starts[-1] + 1)
                        for reel_id, width, starts in wanted
                    )
                )
                break
            except StoreUnavailable:
                if loop.time() >= deadline:
                    raise
                await asyncio.sleep(RESTORE_RETRY_S)
        for (reel_id, width, starts), rows in zip(wanted, stored, strict=True):
            restored = {(width, start): rows[start] for start in starts if start in rows}
            self.state.restore_buckets(reel_id, restored)
            BUCKETS_RESTORED.inc(len(restored))

    async def time_series(
        self, reel_id: int, width: str, from_ms: int, to_ms: int
    ) -> list[tuple[int, int, int]]:
        """(start ms, views, likes) of the reel's `width` buckets in [from_ms, to_ms):
        memory for recent and changed buckets, Cassandra for retired ones."""
        await self.ensure_loaded((reel_id,))
        merged: dict[int, list[int]] = {}
        horizon = self.horizons()[width]
        if from_ms < horizon and reel_id in self.state.reels:
            merged = await self._store.read_buckets(reel_id, width, from_ms, min(to_ms, horizon))
            await self.ensure_loaded((reel_id,))  # it may have been evicted meanwhile
        for start, views, likes in self.state.time_series(reel_id, width, from_ms, to_ms):
            merged[start] = [views, likes]
        return sorted((start, views, likes) for start, (views, likes) in merged.items())

    def retire_old_buckets(self) -> None:
        """Drops old buckets a completed snapshot wrote (`ShardState.retire_buckets`)."""
        BUCKETS_RETIRED.inc(self.state.retire_buckets(self.horizons()))
