"""The owner of one counter shard: lease, recovery, group commit of batches, snapshots.

Invariants:
- A batch is acknowledged only after its payload row is written and its sequence is
  committed into the lease row by an LWT conditioned on this owner's epoch.
- The in-memory state is changed only after that commit, so reads never show a batch that
  a crash could lose, and a fenced owner never shows one that is not durable.
- Per (edge, shard) sequences are dense: seq <= applied is a duplicate (acknowledged again,
  nothing changes), seq > applied + 1 is a gap (refused until the edge resends in order).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass

from prometheus_client import Counter, Gauge, Histogram

from counter import stored_payloads
from counter.config import CounterConfig
from counter.errors import LeaseExpired, NotOwner, Overloaded, SequenceGap, WrongShard
from counter.shard_state import ShardState, reels_of
from counter.snapshot_job import SnapshotJob, take_rollups
from counter.store import CounterStore, Lease, group_rollups, now_ms
from counter.stored_reels import StoredReels
from counter.write_pacer import WritePacer
from protos import counter_pb2
from reelstream.cassandra_client import StoreUnavailable
from reelstream.count_feed import CountFeed
from reelstream.ring import ConsistentHashRing

logger = logging.getLogger(__name__)

CORRECTION_STREAM_PREFIX = "correction:"
# How long a batch that arrived before its predecessor waits for it.
REORDER_WAIT_S = 1.0

BATCHES_APPLIED = Counter("counter_batches_applied_total", "Batches committed")
BATCHES_DUPLICATE = Counter("counter_batches_duplicate_total", "Duplicate batches acknowledged")
COMMIT_SECONDS = Histogram("counter_commit_seconds", "Group commit latency")
COMMIT_PHASE_SECONDS = Histogram(
    "counter_commit_phase_seconds",
    "Group commit by phase: payload writes, the epoch-fenced LWT, then the apply in memory",
    ["phase"],
)
PENDING_BATCHES = Gauge("counter_pending_batches", "Batches waiting for commit")
SNAPSHOT_SECONDS = Histogram("counter_snapshot_seconds", "Snapshot duration")


@dataclass
class _Pending:
    batch: counter_pb2.ApplyBatchRequest
    stored: asyncio.Future[bytes]
    """The payload as `shard_batches` keeps it (counter/stored_payloads.py), compressed in
    a worker thread while the batch waits for its group commit."""
    done: asyncio.Future[counter_pb2.ApplyBatchResponse]
    arrived_s: float
    """Event-loop time the batch started waiting for commit."""


def _retrieve_outcome(done: asyncio.Future[counter_pb2.ApplyBatchResponse]) -> None:
    """Marks a batch's failure as seen. Its callers wait through `asyncio.shield`, which
    hands them the outcome; when every caller gave up first (deadline, cancel), no one
    would, and asyncio logged "Future exception was never retrieved" at ERROR for each
    such batch (found by the quorum-cluster fault test)."""
    if not done.cancelled():
        done.exception()


class CounterShard:
    """Serves one logical shard (the store's) once it holds the shard's lease; a counter
    process hosts one of these per shard it owns (counter/shard_host.py)."""

    def __init__(
        self, config: CounterConfig, store: CounterStore, pacer: WritePacer | None = None
    ) -> None:
        self._config = config
        self._store = store
        # The process's roll-up budget, shared by the shards it hosts (counter/write_pacer.py).
        self._pacer = pacer or WritePacer(
            config.snapshot_max_reels_per_s,
            config.snapshot_busy_reels_per_s,
            busy=lambda: self.commit_wait_s() > config.snapshot_yield_after_s,
        )
        self.shard_id = store.shard
        self.state = ShardState()
        self._ring = ConsistentHashRing.of_size(config.shard_count)
        self.lease: Lease | None = None
        self.applied_seq: dict[str, int] = {}
        self.batches_applied = 0
        self._commits = 0
        self._pending: dict[tuple[str, int], _Pending] = {}
        # Highest sequence waiting for commit, per edge (batches are queued in order).
        self._highest_pending: dict[str, int] = {}
        self._arrivals = asyncio.Condition()
        self._wakeup = asyncio.Event()
        self._closing = False
        self._fenced = asyncio.Event()
        self._snapshot_id = 0
        self._job: SnapshotJob | None = None
        # One writer of the job at a time: a write's acknowledgment drops the job's first
        # unwritten copies, which must be the ones it wrote.
        self._snapshot_lock = asyncio.Lock()
        self._indexed: set[int] = set()
        self.stored = StoredReels(config, store, self.state)
        self.feed = CountFeed()

    @property
    def version(self) -> int:
        """Orders this owner's states: later epochs first, then commits within an epoch."""
        epoch = self.lease.epoch if self.lease else 0
        return (epoch << 40) | self._commits

    @property
    def ttl_ms(self) -> int:
        return int(self._config.lease_ttl_s * 1000)

    @property
    def fenced(self) -> asyncio.Event:
        """Set when another owner took the shard: this owner must stop serving it."""
        return self._fenced

    @property
    def closing(self) -> bool:
        """True once the shard stopped accepting batches (handoff or shutdown)."""
        return self._closing

    async def acquire(self, give_up: Callable[[], bool] = lambda: False) -> None:
        """Waits for the lease (the previous owner releases it after a handoff, or it
        expires after a crash), then recovers state.

        Raises:
            NotOwner: the lease was still held after `lease_wait_s`, or `give_up()` became
                true while waiting (the assignment moved the shard elsewhere).
        """
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self._config.lease_wait_s
        waited = False
        while True:
            lease = await self._store.try_take_lease(self._config.owner_id, self.ttl_ms)
            if lease is not None:
                break
            if loop.time() > deadline or give_up():
                raise NotOwner(f"shard {self.shard_id}: lease still held by another owner")
            if not waited:
                logger.info(
                    "lease held elsewhere, waiting", extra={"fields": {"shard": self.shard_id}}
                )
                waited = True
            await asyncio.sleep(self._config.lease_poll_s)
        self.lease = lease
        # Recovery under load can outlast the lease TTL: keep the lease meanwhile, or
        # another process takes the shard while this one is still reading it.
        renewing = asyncio.create_task(self.run_lease_renewal())
        try:
            await self._recover()
        finally:
            renewing.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await renewing
        if self._fenced.is_set():
            raise NotOwner(f"shard {self.shard_id}: taken by another owner during recovery")
        logger.info(
            "shard owned",
            extra={
                "fields": {
                    "shard": lease.shard,
                    "epoch": lease.epoch,
                    "reels": len(self.state.reels),
                }
            },
        )

    async def _recover(self) -> None:
        """Recovers the shard from its last complete snapshot plus the committed batches,
        reading no reel: the replayed batches wait as deltas (`ShardState.replay_batch`)
        for the reels they touch, merged when each is read on first use (`ensure_loaded`)
        or by the next snapshot. So taking a shard costs the batches since its last
        complete snapshot, not its size.

        A reel's row may have been written by an unfinished snapshot; the batches that
        snapshot covers must then not be applied again. Which snapshot wrote a row is known
        only once it is read, so each replayed batch goes into a segment: the number of
        unfinished snapshots (in id order, their sequences only grow) it is newer than.
        A row of the i-th unfinished snapshot takes the segments after i, any other row
        all of them (`_load`)."""
        began = time.monotonic()
        row = await self._store.read_lease()
        self.applied_seq = dict(row.applied_seq)
        unfinished = sorted(set(row.snapshots) - {row.snapshot_id})
        self.stored.unfinished = {snapshot_id: i for i, snapshot_id in enumerate(unfinished)}
        thresholds = [row.snapshots[snapshot_id] for snapshot_id in unfinished]
        listed = await self._store.list_reels()
        self._indexed.update(listed)
        self.state.unloaded = set(listed)
        replay_ranges: list[str] = []
        replayed = 0
        for edge_id, applied in self.applied_seq.items():
            start = min((seqs.get(edge_id, 0) for seqs in row.snapshots.values()), default=0)
            batch_rows = await self._store.read_batches(edge_id, start, applied)
            if start < applied:
                replay_ranges.append(f"{edge_id}:({start},{applied}]={len(batch_rows)}")
            if len(batch_rows) != applied - start:
                # Committed batches are dense and only trimmed once a complete snapshot
                # covers them: a hole here means counts were lost.
                logger.error(
                    "committed batches missing",
                    extra={
                        "fields": {
                            "edge": edge_id,
                            "range": f"({start},{applied}]",
                            "found": len(batch_rows),
                        }
                    },
                )
            for batch_row in batch_rows:
                batch = counter_pb2.ApplyBatchRequest.FromString(
                    stored_payloads.decode(batch_row.payload or b"")
                )
                segment = sum(1 for seqs in thresholds if batch_row.seq > seqs.get(edge_id, 0))
                await self.stored.restore_old_buckets(batch)
                self.state.replay_batch(batch, segment, len(thresholds) + 1)
                replayed += 1
        self._snapshot_id = max([row.snapshot_id, *row.snapshots.keys()], default=0)
        self.stored.publish_sizes()
        logger.info(
            "recovered",
            extra={
                "fields": {
                    "took_s": round(time.monotonic() - began, 2),
                    "reels_listed": len(listed),
                    "reels_changed_unread": len(self.state.partial),
                    "batches_replayed": replayed,
                    "snapshot_id": row.snapshot_id,
                    "unfinished_snapshots": unfinished,
                    "replay": " ".join(replay_ranges),
                }
            },
        )

    async def ensure_loaded(self, reel_ids: Iterable[int]) -> None:
        """See `StoredReels.ensure_loaded`: call before reading reels of `state`."""
        await self.stored.ensure_loaded(reel_ids)

    async def apply_correction(
        self, correction: counter_pb2.CorrectionBatch
    ) -> counter_pb2.ApplyBatchResponse:
        """Applies externally computed deltas once per batch id.

        Each correction id is its own one-batch stream (`correction:<id>`, seq 1), so the
        same LWT that commits it records that it was applied: no separate dedupe table that
        could disagree with the counts after a crash.
        """
        foreign = [r for r in correction.reel_ids if self._ring.shard_for(r) != self.shard_id]
        if foreign:
            raise WrongShard(
                f"{len(foreign)} reels (e.g. {foreign[:3]}) belong to other shards;"
                " split the batch with reelstream.correction_router"
            )
        batch = counter_pb2.ApplyBatchRequest(
            batch_id=counter_pb2.BatchId(
                edge_id=f"{CORRECTION_STREAM_PREFIX}{correction.batch_id}",
                shard=self.shard_id,
                seq=1,
            ),
            correction_reel_ids=correction.reel_ids,
            correction_view_deltas=correction.view_deltas,
            correction_like_deltas=correction.like_deltas,
            correction_moves_to_removed=correction.moves_to_removed,
        )
        return await self.apply(batch)

    async def apply(self, batch: counter_pb2.ApplyBatchRequest) -> counter_pb2.ApplyBatchResponse:
        """Applies one edge batch exactly once; returns when it is durable."""
        lease = self._require_lease()
        if batch.batch_id.shard != self.shard_id:
            raise WrongShard(
                f"batch for shard {batch.batch_id.shard} sent to shard {self.shard_id}"
            )
        edge_id, seq = batch.batch_id.edge_id, batch.batch_id.seq
        key = (edge_id, seq)
        if self.state.unloaded:
            # Before the batch can wait for commit: once committed it must be applied.
            await self.stored.ensure_loaded(reels_of(batch))
            lease = self._require_lease()
        # Edges keep several batches in flight; one may overtake its predecessor on the
        # wire, so wait briefly for the predecessor before calling it a gap.
        loop = asyncio.get_running_loop()
        deadline = loop.time() + REORDER_WAIT_S
        while True:
            applied = self.applied_seq.get(edge_id, 0)
            if seq <= applied:
                BATCHES_DUPLICATE.inc()
                return counter_pb2.ApplyBatchResponse(duplicate=True, epoch=lease.epoch)
            expected = max(applied, self._highest_pending.get(edge_id, 0)) + 1
            if seq <= expected or key in self._pending:
                break
            if loop.time() >= deadline:
                raise SequenceGap(f"edge {edge_id}: expected seq {expected}, got {seq}")
            # asyncio.timeout, not wait_for: wait_for ran the wait in a task of its own, and
            # under overload (`make soak`, ApplyBatch deadlines expiring) this line raised
            # "cannot wait on un-acquired lock" (mechanism not reproduced in isolation). In
            # this task, Condition.wait re-acquires the lock before a timeout or a
            # cancellation leaves it, so the `async with` always releases its own lock.
            async with self._arrivals:
                with contextlib.suppress(TimeoutError):
                    async with asyncio.timeout(deadline - loop.time()):
                        await self._arrivals.wait()
            # The committer may have finished for a handoff while this batch waited.
            self._require_lease()
        pending = self._pending.get(key)
        if pending is None and seq < expected:
            raise SequenceGap(f"edge {edge_id}: seq {seq} failed before; resend from it")
        if pending is None:
            if len(self._pending) >= self._config.max_pending_batches:
                raise Overloaded(f"{len(self._pending)} batches waiting for commit")
            done: asyncio.Future[counter_pb2.ApplyBatchResponse] = (
                asyncio.get_running_loop().create_future()
            )
            done.add_done_callback(_retrieve_outcome)
            stored = loop.run_in_executor(
                None, stored_payloads.encode, batch.SerializeToString(deterministic=True)
            )
            pending = _Pending(batch, stored, done, loop.time())
            self._pending[key] = pending
            self._highest_pending[edge_id] = seq
            PENDING_BATCHES.set(len(self._pending))
            self._wakeup.set()
            async with self._arrivals:
                self._arrivals.notify_all()
        # A retry of a batch already waiting shares its outcome.
        return await asyncio.shield(pending.done)

    def commit_wait_s(self) -> float:
        """How long the oldest batch still waiting for its commit has waited (0: none)."""
        # Batches are queued in arrival order and leave in commit order, so the first
        # one is the oldest.
        oldest = next(iter(self._pending.values()), None)
        if oldest is None:
            return 0.0
        return asyncio.get_running_loop().time() - oldest.arrived_s

    def _require_lease(self) -> Lease:
        if self._closing:
            raise NotOwner(f"shard {self.shard_id} is shutting down")
        if self.lease is None or self._fenced.is_set():
            raise NotOwner(f"shard {self.shard_id} is not owned by this process")
        if self.lease.expires_ms <= now_ms():
            raise LeaseExpired(f"shard {self.shard_id}: lease expired, renewing")
        return self.lease

    async def run_committer(self) -> None:
        """Commits waiting batches in groups: one payload write each, one LWT per group."""
        try:
            while not (self._closing and not self._pending) and not self._fenced.is_set():
                await self._wakeup.wait()
                self._wakeup.clear()
                while self._pending and not self._fenced.is_set():
                    group = list(self._pending.values())[: self._config.max_group_batches]
                    await self._commit_group(group)
                    self.stored.evict_cold(self._job_reels)
        finally:
            # Fenced, or cancelled by a handoff that ran out of time: no one else would
            # answer these callers, and the next owner decides what was committed.
            self._refuse_pending(NotOwner(f"shard {self.shard_id} is not served here; resend"))

    async def _commit_group(self, group: list[_Pending]) -> None:
        lease = self.lease
        assert lease is not None
        seqs = {p.batch.batch_id.edge_id: p.batch.batch_id.seq for p in group}
        error: Exception | None = None
        with COMMIT_SECONDS.time():
            try:
                with COMMIT_PHASE_SECONDS.labels(phase="payloads").time():
                    stored = await asyncio.gather(*(p.stored for p in group))
                    await self._store.write_batches(
                        [
                            (p.batch.batch_id.edge_id, p.batch.batch_id.seq, payload)
                            for p, payload in zip(group, stored, strict=True)
                        ]
                    )
                with COMMIT_PHASE_SECONDS.labels(phase="lwt").time():
                    self.lease = await self._store.commit(lease, seqs, self.ttl_ms)
            except NotOwner as exc:
                self._fenced.set()
                error = exc
            except StoreUnavailable as exc:
                error = exc
        if error is not None:
            # Later batches of these edges cannot commit before the failed ones: fail them
            # too, so each edge resends from its oldest unacknowledged batch, in order.
            edges = {p.batch.batch_id.edge_id for p in group}
            failed = [p for key, p in self._pending.items() if key[0] in edges]
            for p in failed:
                del self._pending[(p.batch.batch_id.edge_id, p.batch.batch_id.seq)]
                if not p.done.done():
                    p.done.set_exception(error)
            for edge_id in edges:
                self._highest_pending[edge_id] = self.applied_seq.get(edge_id, 0)
            PENDING_BATCHES.set(len(self._pending))
            logger.warning("group commit failed", extra={"fields": {"error": error}})
            return
        changed: set[int] = set()
        applying = time.perf_counter()
        for index, p in enumerate(group):
            if index:
                # A group can hold tens of thousands of entries: let reads, pushes and
                # arrivals run between its batches. Each batch is applied with its sequence
                # in one step, so every state seen in between is a committed prefix.
                await asyncio.sleep(0)
            try:
                await self.stored.prepare_apply(p.batch, give_up_s=self._config.lease_ttl_s)
            except StoreUnavailable as exc:
                # Committed in Cassandra but not applicable here: drop the shard, so a
                # fresh recovery (ours or another owner's) applies it from the batch log.
                self._drop_unapplied(exc)
                break
            changed |= self.state.apply_batch(p.batch)
            self.batches_applied += 1
            BATCHES_APPLIED.inc()
            self.applied_seq[p.batch.batch_id.edge_id] = p.batch.batch_id.seq
            self._commits += 1
            # Removed only now: a retry arriving meanwhile shares this outcome.
            del self._pending[(p.batch.batch_id.edge_id, p.batch.batch_id.seq)]
            if not p.done.done():
                p.done.set_result(counter_pb2.ApplyBatchResponse(epoch=lease.epoch))
        COMMIT_PHASE_SECONDS.labels(phase="apply").observe(time.perf_counter() - applying)
        PENDING_BATCHES.set(len(self._pending))
        self.stored.publish_sizes()
        if changed:
            self.feed.publish(changed)

    def _drop_unapplied(self, error: Exception) -> None:
        """Gives up a shard whose committed batches cannot be applied in memory: every
        waiting caller gets NotOwner and resends to the next owner, whose recovery finds
        the committed ones in the batch log (acknowledged as duplicates)."""
        logger.error(
            "committed batches not applicable here, dropping the shard",
            extra={"fields": {"shard": self.shard_id, "error": error}},
        )
        self._fenced.set()
        self._refuse_pending(NotOwner(f"shard {self.shard_id} is being recovered; resend"))

    def _refuse_pending(self, refusal: NotOwner) -> None:
        for p in self._pending.values():
            if not p.done.done():
                p.done.set_exception(refusal)
        self._pending.clear()
        PENDING_BATCHES.set(0)

    async def run_lease_renewal(self) -> None:
        while not self._closing:
            await asyncio.sleep(self._config.lease_renew_s)
            if self.lease is None or self._closing:
                continue
            try:
                self.lease = await self._store.renew(self.lease, self.ttl_ms)
            except NotOwner:
                logger.error("lease lost: another owner took the shard")
                self._fenced.set()
                return
            except StoreUnavailable as exc:
                logger.warning("lease renewal failed", extra={"fields": {"error": exc}})

    async def run_snapshots(self) -> None:
        while not self._closing:
            await asyncio.sleep(self._config.snapshot_interval_s)
            try:
                await self.snapshot()
            except (StoreUnavailable, LeaseExpired) as exc:
                logger.warning("snapshot failed, will retry", extra={"fields": {"error": exc}})
            except NotOwner:
                self._fenced.set()
                return

    def _cut_job(self) -> SnapshotJob | None:
        """Cuts a snapshot of the dirty reels at the applied sequences, in O(1): the reels
        are copied later, in chunks as they are written or just before their next change
        (copy-on-write), so a cut of many reels never stalls the event loop."""
        if not self.state.dirty:
            return None
        self._snapshot_id += 1
        self.state.uncopied, self.state.dirty = self.state.dirty, set()
        self.state.copy_before_change = self._copy_reels
        return SnapshotJob(self._snapshot_id, dict(self.applied_seq))

    def _job_reels(self) -> set[int]:
        """Reels of the snapshot job being written (their rows may not be in Cassandra)."""
        job = self._job
        return job.reel_ids() if job is not None else set()

    def _copy_reels(self, reel_ids: list[int]) -> None:
        """Copies reels of the current job as of its cut and clears their dirty marks."""
        job = self._job
        assert job is not None, "only reels of a cut job are uncopied"
        self.state.uncopied.difference_update(reel_ids)
        new_reels = {reel_id for reel_id in reel_ids if reel_id not in self._indexed}
        job.add(take_rollups(reel_ids, self.state, new_reels))

    def _copy_some(self, limit: int) -> None:
        """Copies up to `limit` reels of the current job that no change has copied yet."""
        uncopied = self.state.uncopied
        some = [uncopied.pop() for _ in range(min(limit, len(uncopied)))]
        if some:
            self._copy_reels(some)

    async def snapshot(self, paced: bool = True) -> None:
        """Rolls dirty reels up into `reel_state`; a failed job is retried from its first
        unacknowledged chunk. `paced` False skips the process's write budget (a handoff's
        final snapshot)."""
        async with self._snapshot_lock:
            await self._snapshot(paced)

    async def _snapshot(self, paced: bool) -> None:
        lease = self.lease
        if lease is None or self._fenced.is_set():
            raise NotOwner(f"shard {self.shard_id}: no lease for a snapshot")
        if lease.expires_ms <= now_ms():
            raise LeaseExpired(f"shard {self.shard_id}: lease expired, snapshot waits")
        if self._job is None and self.state.partial:
            # Replayed changes of reels not read yet must be written before this
            # snapshot's completion trims their batches: read them first.
            await self.stored.load_changed()
        if self._job is None:
            self._job = self._cut_job()
        job = self._job
        if job is None:
            return
        with SNAPSHOT_SECONDS.time():
            await self._store.begin_snapshot(lease, job.snapshot_id, job.seqs)
            # Writes wait for Cassandra's commitlog fsync (batch sync): the requests of a
            # chunk are in flight together and share fsyncs.
            reels_per_write = self._config.snapshot_reels_per_write
            # Chunks paced to the process's write budget, so snapshots never flood
            # Cassandra however many shards the process hosts. A retried job goes on
            # from its first chunk not acknowledged (written again: idempotent).
            chunk = max(256, 16 * reels_per_write)
            while job.unwritten_count or self.state.uncopied:
                if chunk > job.unwritten_count:
                    self._copy_some(chunk - job.unwritten_count)
                entries = job.next_rollups(chunk)
                if paced:
                    await self._pacer.wait_for(len(entries))
                await self._store.index_reels([e.reel_id for e in entries if e.new_reel])
                await asyncio.gather(
                    *(
                        self._store.write_reels(job.snapshot_id, group)
                        for group in group_rollups(entries, reels_per_write)
                    )
                )
                job.mark_written(len(entries))
            await self._store.finish_snapshot(lease, job.snapshot_id, job.seqs)
        self._indexed.update(job.written)
        self._job = None
        self.stored.snapshot_completed()
        # Every clean bucket is in Cassandra now: old ones leave memory.
        self.stored.retire_old_buckets()
        if self._config.trim_batches:
            for edge_id, seq in job.seqs.items():
                await self._store.trim_batches(edge_id, seq)

    def stop_accepting(self) -> None:
        """New batches are refused from now on (UNAVAILABLE: the edge re-resolves the
        owner); the committer commits what waits, then returns."""
        self._closing = True
        self._wakeup.set()

    async def final_snapshot(self) -> None:
        """Rolls up everything applied, so the next owner replays few batches. Optional
        for correctness (the next owner replays every committed batch after the last
        complete snapshot), so failures only make the next recovery longer."""
        if self.lease is None or self._fenced.is_set():
            return
        # Unpaced: at the process's budget a busy shard's final snapshot outlasted the
        # handoff timeout, and the next owner then replayed (and read) most of the shard.
        with contextlib.suppress(StoreUnavailable, NotOwner, LeaseExpired):
            while self._job is not None or self.state.dirty or self.state.partial:
                await self.snapshot(paced=False)

    async def drain(self) -> None:
        """Stops accepting batches, commits what waits, writes a final snapshot."""
        self.stop_accepting()
        await self.final_snapshot()

    async def release(self) -> None:
        """Ends the lease (conditioned on our epoch) so the next owner need not wait for
        it to expire."""
        if self.lease is not None and not self._fenced.is_set():
            with contextlib.suppress(StoreUnavailable):
                await self._store.release(self.lease)
