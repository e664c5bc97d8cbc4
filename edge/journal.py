"""The edge's durable journal and outbox in its local Redis (AOF on).

- `append` group-commits client calls: one RPUSH carries every call that arrived while the
  previous one was in flight, and a call returns only after Redis confirmed its entry.
- `cut` turns every journaled entry into per-shard batches with their idempotency ids and,
  in one MULTI/EXEC, stores them in the outbox and trims them from the journal.
- `acknowledge` removes a batch from the outbox once its shard committed it.
An in-memory mirror of the journal and the outbox serves reads (read-your-writes) and the
cut; after any Redis error whose outcome is unknown, the mirror is reloaded from Redis.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import secrets
import time
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt
from prometheus_client import Counter as MetricCounter
from prometheus_client import Gauge, Histogram
from redis.asyncio import Redis
from redis.exceptions import RedisError

from edge.batch_builder import ViewDeltas, build_shard_batches
from edge.errors import JournalFull, JournalUnavailable
from edge.event_columns import EventColumns
from edge.forwarding_pressure import ForwardingPressure
from edge.journal_codec import decode_entry, encode_entry
from protos import counter_pb2
from reelstream.loop_lag import LAG_BUCKETS
from reelstream.ring import ConsistentHashRing

logger = logging.getLogger(__name__)

JOURNAL_DEPTH = Gauge("edge_journal_depth_events", "Events accepted but not yet acknowledged")
GROUP_COMMIT_CALLS = Histogram(
    "edge_group_commit_calls",
    "Client calls per Redis round trip",
    buckets=(1, 2, 4, 8, 16, 32, 64, 128, 256, 512),
)
ADMISSION_HOLDS = MetricCounter(
    "edge_admission_holds_total",
    "Calls held before intake because a working shard was behind (edge/forwarding_pressure.py)",
)
# While held, a call also looks again this often (a shard that stops acknowledging stops
# counting as working after a second, and then holds no one).
HOLD_RECHECK_S = 0.1
JOURNAL_WRITE_SECONDS = Histogram(
    "edge_journal_write_seconds",
    "One group commit: waiting for the journal lock, then the RPUSH round trip (AOF fsync)",
    buckets=LAG_BUCKETS,
)
CUT_SECONDS = Histogram(
    "edge_journal_cut_seconds",
    "One cut, by phase: building the shard batches, then the MULTI/EXEC round trip",
    ["phase"],
    buckets=LAG_BUCKETS,
)
JOURNAL_ERRORS = MetricCounter("edge_journal_errors_total", "Redis errors on the journal path")
PRESSURE_REFUSALS = MetricCounter(
    "edge_forwarding_pressure_refusals_total",
    "Calls refused because a working shard fell behind (edge/forwarding_pressure.py)",
)


# Acknowledged batches are forgotten after this long even without a push confirming them
# (a broken push stream drops its cached values, so reads then go to the shard).
ACKNOWLEDGED_RETENTION_S = 30.0
# ... and kept at least this long, for direct shard reads answered before the commit but
# received after the push that confirmed it.
ACKNOWLEDGED_MIN_AGE_S = 2.0


@dataclass
class OutboxBatch:
    """A batch with its id, durable in the outbox until its shard acknowledges it."""

    shard: int
    seq: int
    payload: bytes
    view_deltas: ViewDeltas
    events: int
    sent: bool = True
    """False until this process first sends it (batches loaded from Redis may have been
    sent by an earlier process): a shard calling a never-sent batch a duplicate means
    this edge reused sequence numbers."""


@dataclass
class _Waiter:
    payload: bytes
    entry: EventColumns
    done: asyncio.Future[None]


def _batch_from_payload(shard: int, seq: int, payload: bytes) -> OutboxBatch:
    request = counter_pb2.ApplyBatchRequest.FromString(payload)
    deltas = ViewDeltas.of_entries(
        np.asarray(request.view_reel_ids, dtype=np.uint64),
        np.asarray(request.view_counts, dtype=np.int64),
    )
    events = deltas.total + len(request.like_reel_ids)
    return OutboxBatch(shard, seq, payload, deltas, events)


ReelIds = Sequence[int] | npt.NDArray[np.uint64]
"""A call's reel ids: the request's repeated field, or a column of them."""


class _CallShards:
    """The shards a call's events go to, worked out only once some shard is behind (most
    calls never need it)."""

    def __init__(self, ring: ConsistentHashRing, reel_ids: ReelIds | None) -> None:
        self._ring = ring
        self._reel_ids = reel_ids
        self._shards: frozenset[int] | None = None

    def first_of(self, lagging: list[int]) -> int | None:
        """The first of `lagging` the call has events for (any, when its reels are not
        known), or None."""
        if not lagging or self._reel_ids is None:
            return lagging[0] if lagging else None
        if self._shards is None:
            reel_ids = np.asarray(self._reel_ids, dtype=np.uint64)
            self._shards = frozenset(self._ring.shards_for(reel_ids).tolist())
        return next((shard for shard in lagging if shard in self._shards), None)


class EdgeJournal:
    """Journal + outbox of one edge node."""

    def __init__(
        self,
        redis: Redis,
        name: str,
        ring: ConsistentHashRing,
        max_events: int,
        pressure: ForwardingPressure | None = None,
    ) -> None:
        self._redis = redis
        self._pressure = pressure or ForwardingPressure(0)
        # Cut and unacknowledged events per shard (the outbox's depth; the pressure rule
        # looks at it per shard).
        self._shard_backlog: dict[int, int] = dict.fromkeys(ring.shard_ids, 0)
        self._name = name
        self._ring = ring
        self._max_events = max_events
        self._key = f"edge:{name}"
        self.edge_id = ""
        self._mirror: list[EventColumns] = []
        # Views per reel of the mirror: entries are folded in when a read needs them, since
        # most are cut before any read looks (see `journal_views`).
        self._journal_views: Counter[int] = Counter()
        self._unfolded: list[EventColumns] = []
        self.outbox: dict[int, dict[int, OutboxBatch]] = {s: {} for s in ring.shard_ids}
        self._next_seq: dict[int, int] = {}
        self._waiting: list[_Waiter] = []
        self._wakeup = asyncio.Event()
        self._resync_needed = False
        # `_lock` orders the journal's writes (one group commit at a time) against a cut's
        # snapshot of the mirror; `_cut_lock` is held through a whole cut, Redis round trip
        # included. Group commits go on during that round trip (the cut trims exactly the
        # entries it took from the head of the list; commits push at its tail). A reload
        # replaces the mirror and the outbox, so it holds both (always `_cut_lock` first).
        self._lock = asyncio.Lock()
        self._cut_lock = asyncio.Lock()
        self.outbox_changed = asyncio.Event()
        self._closing = False
        self._journal_events = 0
        self._waiting_events = 0
        self._acknowledged: dict[int, dict[int, tuple[float, ViewDeltas]]] = {}
        self._acknowledged_any = asyncio.Event()

    @property
    def depth_events(self) -> int:
        """Events accepted or being accepted and not yet acknowledged by their shard."""
        outbox_events = sum(self._shard_backlog.values())
        return self._journal_events + outbox_events + self._waiting_events

    async def open(self) -> None:
        """Loads (or creates) this edge's incarnation, journal and outbox from Redis."""
        await self._reload()
        logger.info(
            "journal opened",
            extra={"fields": {"edge_id": self.edge_id, "depth_events": self.depth_events}},
        )

    async def _load_incarnation(self) -> None:
        """Adopts the incarnation stored in Redis, creating one if there is none.

        Sequence numbers are only unique per incarnation. If Redis lost its data under a
        running edge (wiped, restored from an old file), the next sequences would repeat
        ones the shards have committed and be dropped as duplicates: a new incarnation
        starts a fresh sequence space instead.
        """
        await self._redis.set(f"{self._key}:incarnation", secrets.token_hex(4), nx=True)
        stored = await self._redis.get(f"{self._key}:incarnation")
        edge_id = f"{self._name}.{stored.decode()}"
        if self.edge_id and edge_id != self.edge_id:
            logger.error(
                "journal Redis lost this edge's incarnation: new sequence space",
                extra={"fields": {"was": self.edge_id, "now": edge_id}},
            )
        self.edge_id = edge_id

    async def _reload(self) -> None:
        await self._load_incarnation()
        raw_entries = await self._redis.lrange(f"{self._key}:journal", 0, -1)  # type: ignore[misc]  # redis-py types sync|async as a union
        self._mirror = [decode_entry(raw) for raw in raw_entries]
        self._journal_views, self._unfolded = Counter(), list(self._mirror)
        seqs = await self._redis.hgetall(f"{self._key}:next_seq")  # type: ignore[misc]  # redis-py types sync|async as a union
        self._next_seq = {int(k): int(v) for k, v in seqs.items()}
        for shard in self._ring.shard_ids:
            raw = await self._redis.hgetall(f"{self._key}:outbox:{shard}")  # type: ignore[misc]  # redis-py types sync|async as a union
            self.outbox[shard] = {
                int(seq): _batch_from_payload(shard, int(seq), payload)
                for seq, payload in sorted(raw.items(), key=lambda kv: int(kv[0]))
            }
        self._journal_events = sum(len(entry) for entry in self._mirror)
        self._shard_backlog = {
            shard: sum(batch.events for batch in batches.values())
            for shard, batches in self.outbox.items()
        }
        self._resync_needed = False
        JOURNAL_DEPTH.set(self.depth_events)
        self.outbox_changed.set()

    def _check_admission(self, events: int, call: _CallShards) -> None:
        """Raises what `append` would for `events` more events of `call` right now.

        Raises:
            JournalFull: the journal holds `max_events` unacknowledged events, or a working
                shard that the call has events for is behind (edge/forwarding_pressure.py).
            JournalUnavailable: the edge is shutting down.
        """
        if self._closing:
            raise JournalUnavailable("edge is shutting down")
        if self.depth_events + events > self._max_events:
            raise JournalFull(f"journal holds {self.depth_events} unacknowledged events")
        lagging = call.first_of(self._lagging_shards())
        if lagging is not None:
            PRESSURE_REFUSALS.inc()
            raise JournalFull(
                f"counter shard {lagging} is {self._shard_backlog[lagging]} events behind"
                " and falling further"
            )

    def _lagging_shards(self) -> list[int]:
        return self._pressure.lagging_shards(self._shard_backlog, time.monotonic())

    async def admit(self, max_wait_s: float, reel_ids: ReelIds | None = None) -> None:
        """Holds a call with events for `reel_ids` (None: for any shard) while a working
        shard they go to is behind, for up to `max_wait_s`, then raises what `append`
        would. Intake waits here before it validates a call: under overload, callers are
        slowed down to what the shards drain, instead of being refused and resending (each
        resend costs the edge a whole call)."""
        call = _CallShards(self._ring, reel_ids)
        if call.first_of(self._lagging_shards()) is not None:
            ADMISSION_HOLDS.inc()
            loop = asyncio.get_running_loop()
            deadline = loop.time() + max_wait_s
            while call.first_of(self._lagging_shards()) is not None and not self._closing:
                remaining = deadline - loop.time()
                if remaining <= 0:
                    break
                self._acknowledged_any.clear()
                with contextlib.suppress(TimeoutError):
                    # Woken by acknowledgments; the timeout also ends a wait whose shard
                    # stopped acknowledging (a shard that is down does not hold calls).
                    async with asyncio.timeout(min(remaining, HOLD_RECHECK_S)):
                        await self._acknowledged_any.wait()
        self._check_admission(0, call)

    async def append(self, entry: EventColumns) -> None:
        """Returns once `entry` is durable in Redis.

        Raises:
            JournalFull: the journal holds `max_events` unacknowledged events.
            JournalUnavailable: Redis did not confirm the write.
        """
        self._check_admission(len(entry), _CallShards(self._ring, entry.reel_ids))
        done: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._waiting.append(_Waiter(encode_entry(entry), entry, done))
        self._waiting_events += len(entry)
        self._wakeup.set()
        await asyncio.shield(done)

    async def run_group_commit(self) -> None:
        """Writes waiting entries, one RPUSH per round trip, until closed and empty."""
        while not (self._closing and not self._waiting):
            await self._wakeup.wait()
            self._wakeup.clear()
            while self._waiting:
                group, self._waiting = self._waiting, []
                await self._commit(group)
                self._waiting_events -= sum(len(w.entry) for w in group)

    async def _commit(self, group: list[_Waiter]) -> None:
        started = time.perf_counter()
        try:
            if self._resync_needed:
                await self._resync()
            async with self._lock:
                await self._redis.rpush(f"{self._key}:journal", *(w.payload for w in group))  # type: ignore[misc]  # redis-py types sync|async as a union
                for waiter in group:
                    self._mirror.append(waiter.entry)
                    self._unfolded.append(waiter.entry)
                    self._journal_events += len(waiter.entry)
        except (RedisError, OSError) as exc:
            JOURNAL_ERRORS.inc()
            self._resync_needed = True
            logger.warning("journal write failed", extra={"fields": {"error": exc}})
            for waiter in group:
                if not waiter.done.done():
                    waiter.done.set_exception(JournalUnavailable(f"journal write failed: {exc}"))
            return
        JOURNAL_WRITE_SECONDS.observe(time.perf_counter() - started)
        GROUP_COMMIT_CALLS.observe(len(group))
        JOURNAL_DEPTH.set(self.depth_events)
        for waiter in group:
            if not waiter.done.done():
                waiter.done.set_result(None)

    async def _resync(self) -> None:
        """Reloads the mirror from Redis after an error whose outcome is unknown (waits for
        a cut in flight: its bookkeeping must not land on a reloaded mirror)."""
        async with self._cut_lock, self._lock:
            if self._resync_needed:
                await self._reload()

    async def cut(self) -> int:
        """Moves every journaled entry into per-shard outbox batches; returns batches made.

        A Redis failure leaves journal and outbox as they were (MULTI/EXEC) and returns 0.
        """
        async with self._cut_lock:
            if self._resync_needed:
                try:
                    async with self._lock:
                        await self._reload()
                except (RedisError, OSError) as exc:
                    JOURNAL_ERRORS.inc()
                    logger.warning("journal reload failed", extra={"fields": {"error": exc}})
                    return 0
            # These entries are the head of the Redis list: commits push at its tail, also
            # while the MULTI/EXEC below is in flight, and its LTRIM drops just these.
            entries = list(self._mirror)
            if not entries:
                return 0
            started = time.perf_counter()
            batches = build_shard_batches(EventColumns.concat(entries), self._ring)
            made: list[OutboxBatch] = []
            next_seq = dict(self._next_seq)
            pipe = self._redis.pipeline(transaction=True)
            for shard, shard_batch in sorted(batches.items()):
                seq = next_seq.get(shard, 1)
                next_seq[shard] = seq + 1
                payload = shard_batch.payload(
                    counter_pb2.BatchId(edge_id=self.edge_id, shard=shard, seq=seq)
                )
                pipe.hset(f"{self._key}:outbox:{shard}", str(seq), payload)  # type: ignore[arg-type]
                made.append(
                    OutboxBatch(
                        shard, seq, payload, shard_batch.view_deltas, shard_batch.events, False
                    )
                )
            pipe.hset(f"{self._key}:next_seq", mapping={str(k): v for k, v in next_seq.items()})
            pipe.ltrim(f"{self._key}:journal", len(entries), -1)
            built = time.perf_counter()
            CUT_SECONDS.labels(phase="build").observe(built - started)
            try:
                await pipe.execute()
            except (RedisError, OSError) as exc:
                JOURNAL_ERRORS.inc()
                self._resync_needed = True
                logger.warning("journal cut failed", extra={"fields": {"error": exc}})
                return 0
            CUT_SECONDS.labels(phase="write").observe(time.perf_counter() - built)
            # Commits may have appended during the round trip: what is left is theirs, and
            # recounting it is cheaper than subtracting what the cut took.
            del self._mirror[: len(entries)]
            self._journal_views, self._unfolded = Counter(), list(self._mirror)
            self._next_seq = next_seq
            moved = sum(len(entry) for entry in entries)
            self._journal_events -= moved
            for batch in made:
                self.outbox.setdefault(batch.shard, {})[batch.seq] = batch
                self._shard_backlog[batch.shard] = (
                    self._shard_backlog.get(batch.shard, 0) + batch.events
                )
        self.outbox_changed.set()
        return len(made)

    def oldest_batches(self, shard: int, limit: int) -> list[OutboxBatch]:
        """Up to `limit` outbox batches of `shard`, lowest sequences first."""
        batches = self.outbox.get(shard, {})
        return [batches[seq] for seq in sorted(batches)[:limit]]

    async def acknowledge(self, batch: OutboxBatch) -> None:
        """Forgets a batch its shard committed. A failed delete only causes a resend,
        which the shard recognises as a duplicate. Only this very batch is forgotten: after
        a reload the outbox holds new objects (possibly of a new sequence space, where the
        same number is another batch), which leave on their own acknowledgments."""
        outbox = self.outbox.get(batch.shard, {})
        if outbox.get(batch.seq) is not batch:
            return
        del outbox[batch.seq]
        self._shard_backlog[batch.shard] -= batch.events
        self._pressure.acknowledged(batch.shard, time.monotonic())
        self._acknowledged_any.set()
        # Reads may still hold a value from before this commit: keep the deltas until the
        # shard's pushes show they are included (see `note_included`).
        self._acknowledged.setdefault(batch.shard, {})[batch.seq] = (
            time.monotonic(),
            batch.view_deltas,
        )
        JOURNAL_DEPTH.set(self.depth_events)
        try:
            await self._redis.hdel(f"{self._key}:outbox:{batch.shard}", str(batch.seq))  # type: ignore[misc]  # redis-py types sync|async as a union
        except (RedisError, OSError) as exc:
            JOURNAL_ERRORS.inc()
            logger.warning("outbox delete failed", extra={"fields": {"error": exc}})

    @property
    def journal_views(self) -> Counter[int]:
        """Views per reel journaled and not yet cut."""
        if self._unfolded:
            self._journal_views.update(EventColumns.concat(self._unfolded).view_counts())
            self._unfolded = []
        return self._journal_views

    def unacknowledged_views(self, shard: int, reel_id: int, applied_seq: int) -> int:
        """This edge's views of `reel_id` that a value including this edge's batches up to
        `applied_seq` does not include: uncut, in the outbox, or acknowledged after it."""
        pending = self.journal_views.get(reel_id, 0)
        for seq, batch in self.outbox.get(shard, {}).items():
            if seq > applied_seq:
                pending += batch.view_deltas.get(reel_id, 0)
        for seq, (_, deltas) in self._acknowledged.get(shard, {}).items():
            if seq > applied_seq:
                pending += deltas.get(reel_id, 0)
        return pending

    def note_included(self, shard: int, applied_seq: int) -> None:
        """The shard pushed values including this edge's batches up to `applied_seq`:
        acknowledged batches up to there are in every cached value they touched."""
        kept = self._acknowledged.get(shard)
        if not kept:
            return
        now = time.monotonic()
        for seq in [
            s
            for s, (at, _) in kept.items()
            if (s <= applied_seq and now - at >= ACKNOWLEDGED_MIN_AGE_S)
            or now - at >= ACKNOWLEDGED_RETENTION_S
        ]:
            del kept[seq]

    def close(self) -> None:
        self._closing = True
        self._wakeup.set()
