"""The logical shards one counter process serves, and their handoffs.

Every `membership_interval_s` the process heartbeats its registry row (kind counter), reads
the live members, computes the assignment (counter/shard_assignment.py) and reconciles:
- a shard assigned here and not served is taken: wait for the lease (the previous owner
  releases it at the end of its handoff, or it expires after a crash), recover the shard
  from its last snapshot plus the committed batches, then serve it;
- a shard served here and assigned elsewhere is handed off: refuse new batches (edges get
  UNAVAILABLE and re-resolve the owner), let the waiting ones commit, write a final
  snapshot, release the lease.
Keys never change logical shard, so per-(edge, shard) sequences and exactly-once hold
across a move; the lease's epoch fences an old owner that did not notice it lost a shard.
A process leaving (SIGTERM) marks itself `leaving`, so the others take its shards while
it hands them off.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from dataclasses import dataclass, field

from prometheus_client import Gauge, Histogram

from counter.config import CounterConfig
from counter.errors import NotOwner, WrongShard
from counter.membership import LeaseHolder, Member, MemberStore
from counter.shard_assignment import assign_shards, shards_of
from counter.shard_owner import CounterShard
from counter.store import CounterStore
from counter.write_pacer import WritePacer
from protos import counter_pb2
from reelstream.background import BackgroundLoops
from reelstream.cassandra_client import StoreUnavailable
from reelstream.ring import ConsistentHashRing

logger = logging.getLogger(__name__)

SHARDS_SERVED = Gauge("counter_shards_served", "Logical shards this process serves")
HANDOFF_SECONDS = Histogram("counter_handoff_seconds", "Giving a shard away, stop to release")
TAKEOVER_SECONDS = Histogram(
    "counter_takeover_seconds", "Taking an assigned shard, first try to serving"
)
# The shard map served to edges is re-read at most this often.
SHARD_MAP_MAX_AGE_S = 0.1


@dataclass
class _Served:
    shard: CounterShard
    # A loop that fails shuts the process down (BackgroundLoops), as a bug should.
    loops: BackgroundLoops = field(default_factory=BackgroundLoops)
    tasks: dict[str, asyncio.Task[None]] = field(default_factory=dict)


class ShardHost:
    """Serves the logical shards the assignment gives this process."""

    def __init__(self, config: CounterConfig, store: CounterStore, members: MemberStore) -> None:
        self._config = config
        self._store = store
        self._members = members
        self.ring = ConsistentHashRing.of_size(config.shard_count)
        self._pacer = WritePacer(
            config.snapshot_max_reels_per_s,
            config.snapshot_busy_reels_per_s,
            busy=self._commits_backed_up,
        )
        self._served: dict[int, _Served] = {}
        self._taking: dict[int, asyncio.Task[None]] = {}
        self._handing_off: dict[int, asyncio.Task[None]] = {}
        self._desired: set[int] = set()
        self._leaving = False
        self._map: counter_pb2.ShardMap | None = None
        self._map_read_at = 0.0
        self._map_lock = asyncio.Lock()

    @property
    def served(self) -> dict[int, CounterShard]:
        """The shards serving now (not those being taken or handed off)."""
        return {s: served.shard for s, served in self._served.items()}

    def _commits_backed_up(self) -> bool:
        """True while a hosted shard's oldest batch has waited too long for its commit:
        roll-ups then yield to commits (counter/write_pacer.py)."""
        limit_s = self._config.snapshot_yield_after_s
        return any(served.shard.commit_wait_s() > limit_s for served in self._served.values())

    def shard(self, shard_id: int) -> CounterShard:
        """The served shard `shard_id`.

        Raises:
            WrongShard: no such logical shard.
            NotOwner: this process does not serve it (now): the caller re-resolves.
        """
        if not 0 <= shard_id < self._config.shard_count:
            raise WrongShard(f"shard {shard_id} is not in [0, {self._config.shard_count})")
        served = self._served.get(shard_id)
        if served is None:
            raise NotOwner(
                f"shard {shard_id} is not served by {self._config.name}; ask GetShardMap"
            )
        return served.shard

    def shard_of_reels(self, reel_ids: list[int]) -> CounterShard:
        """The served shard owning every reel of `reel_ids` (callers split by shard).

        Raises:
            WrongShard: the reels belong to several shards.
            NotOwner: their shard is not served here.
        """
        shards = {self.ring.shard_for(reel_id) for reel_id in reel_ids} or {0}
        if len(shards) > 1:
            raise WrongShard(
                f"reels of {len(shards)} shards in one call; split them by shard"
                f" (ConsistentHashRing.of_size({self._config.shard_count}))"
            )
        return self.shard(shards.pop())

    async def start(self) -> None:
        """Joins the members and takes the shards assigned at start-up (bounded wait)."""
        await self._members.prepare()
        await self._reconcile()
        if self._taking:
            # Heartbeats go on meanwhile: a takeover under load can outlast the member
            # TTL, and the others would then assign our shards away and back (seen in an
            # ad-hoc join under 30k events/s, before this).
            beating = asyncio.create_task(self._heartbeat_until_cancelled())
            try:
                await asyncio.wait(list(self._taking.values()), timeout=self._config.lease_wait_s)
            finally:
                await _cancel([beating])

    async def _heartbeat_until_cancelled(self) -> None:
        while True:
            await asyncio.sleep(self._config.membership_interval_s)
            try:
                await self._heartbeat()
            except StoreUnavailable as exc:
                logger.warning("heartbeat failed", extra={"fields": {"error": exc}})

    async def run_membership(self) -> None:
        """Heartbeats and reconciles until the process leaves."""
        while not self._leaving:
            await asyncio.sleep(self._config.membership_interval_s)
            if self._leaving:
                return
            try:
                await self._reconcile()
            except StoreUnavailable as exc:
                # Shards keep serving under their leases; the lease renewal decides.
                logger.warning("membership round failed", extra={"fields": {"error": exc}})

    async def _heartbeat(self) -> None:
        await self._members.heartbeat(
            self._config.name,
            self._config.reachable_address,
            self._config.owner_id,
            self._leaving,
            int(self._config.member_ttl_s * 1000),
        )

    async def _reconcile(self) -> None:
        await self._heartbeat()
        members = await self._members.live_members()
        active = [m.member for m in members if not m.leaving]
        if self._config.name not in active and not self._leaving:
            active.append(self._config.name)
        self._desired = shards_of(
            assign_shards(self._config.shard_count, active), self._config.name
        )
        for shard_id in sorted(set(self._served) - self._desired):
            if shard_id not in self._handing_off:
                self._handing_off[shard_id] = asyncio.create_task(
                    self._hand_off(shard_id), name=f"handoff-{shard_id}"
                )
        for shard_id in sorted(self._desired - set(self._served) - set(self._taking)):
            if shard_id not in self._handing_off:
                self._taking[shard_id] = asyncio.create_task(
                    self._take(shard_id), name=f"take-{shard_id}"
                )

    async def _take(self, shard_id: int) -> None:
        began = time.monotonic()
        shard = CounterShard(self._config, self._store.for_shard(shard_id), self._pacer)
        try:
            await shard.acquire(give_up=lambda: shard_id not in self._desired or self._leaving)
        except NotOwner as exc:
            logger.info("shard not taken", extra={"fields": {"shard": shard_id, "why": exc}})
            return
        except StoreUnavailable as exc:
            logger.warning(
                "taking shard failed", extra={"fields": {"shard": shard_id, "error": exc}}
            )
            return
        finally:
            self._taking.pop(shard_id, None)
        served = _Served(shard)
        for name, loop in (
            ("committer", shard.run_committer()),
            ("lease-renewal", shard.run_lease_renewal()),
            ("snapshots", shard.run_snapshots()),
            ("fencing-watch", self._drop_when_fenced(shard)),
        ):
            served.tasks[name] = served.loops.start(loop, f"{name}-{shard_id}")
        self._served[shard_id] = served
        SHARDS_SERVED.set(len(self._served))
        TAKEOVER_SECONDS.observe(time.monotonic() - began)
        logger.info(
            "shard serving",
            extra={
                "fields": {
                    "shard": shard_id,
                    "epoch": shard.lease.epoch if shard.lease else 0,
                    "took_s": round(time.monotonic() - began, 3),
                }
            },
        )

    async def _drop_when_fenced(self, shard: CounterShard) -> None:
        await shard.fenced.wait()
        logger.error(
            "fenced by a newer owner: shard dropped", extra={"fields": {"shard": shard.shard_id}}
        )
        served = self._served.pop(shard.shard_id, None)
        SHARDS_SERVED.set(len(self._served))
        shard.stored.forget_sizes()
        if served is not None:
            shard.stop_accepting()
            await _cancel([t for name, t in served.tasks.items() if name != "fencing-watch"])

    async def _hand_off(self, shard_id: int) -> None:
        """Stops accepting, commits what waits, snapshots and releases the lease."""
        served = self._served.get(shard_id)
        if served is None:
            return
        began = time.monotonic()
        shard = served.shard
        shard.stop_accepting()
        try:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(
                    asyncio.shield(served.tasks["committer"]), self._config.handoff_timeout_s
                )
            await _cancel([served.tasks["snapshots"], served.tasks["fencing-watch"]])
            left_s = self._config.handoff_timeout_s - (time.monotonic() - began)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(shard.final_snapshot(), max(0.1, left_s))
            await _cancel(list(served.tasks.values()))
            await shard.release()
        finally:
            self._served.pop(shard_id, None)
            self._handing_off.pop(shard_id, None)
            SHARDS_SERVED.set(len(self._served))
            shard.stored.forget_sizes()
        HANDOFF_SECONDS.observe(time.monotonic() - began)
        logger.info(
            "shard handed off",
            extra={"fields": {"shard": shard_id, "took_s": round(time.monotonic() - began, 3)}},
        )

    async def leave(self) -> None:
        """Leaves the members: every served shard is handed off, the others take them."""
        self._leaving = True
        self._desired = set()
        with contextlib.suppress(StoreUnavailable):
            await self._heartbeat()
        await _cancel(list(self._taking.values()))
        for shard_id in list(self._served):
            if shard_id not in self._handing_off:
                self._handing_off[shard_id] = asyncio.create_task(self._hand_off(shard_id))
        await asyncio.gather(*self._handing_off.values(), return_exceptions=True)

    async def close(self) -> None:
        """Stops everything left (after `leave`, nothing is) and removes the member row."""
        await _cancel(list(self._taking.values()) + list(self._handing_off.values()))
        for served in list(self._served.values()):
            await _cancel(list(served.tasks.values()))
        with contextlib.suppress(StoreUnavailable):
            await self._members.remove(self._config.name, self._config.owner_id)

    async def shard_map(self) -> counter_pb2.ShardMap:
        """Lease holders and the assignment as Cassandra has them (re-read at most every
        SHARD_MAP_MAX_AGE_S, however many edges ask)."""
        async with self._map_lock:
            if self._map is None or time.monotonic() - self._map_read_at > SHARD_MAP_MAX_AGE_S:
                members = await self._members.live_members()
                holders = await self._members.lease_holders()
                self._map = _build_map(self._config.shard_count, members, holders)
                self._map_read_at = time.monotonic()
            return self._map


def _build_map(
    shard_count: int, members: list[Member], holders: dict[int, LeaseHolder]
) -> counter_pb2.ShardMap:
    by_owner = {m.owner: m for m in members}
    assignment = assign_shards(shard_count, [m.member for m in members if not m.leaving])
    owners = []
    for shard_id in range(shard_count):
        holder = holders.get(shard_id)
        member = by_owner.get(holder.owner) if holder is not None else None
        owners.append(
            counter_pb2.ShardOwner(
                shard=shard_id,
                address=member.address if member is not None else "",
                member=member.member if member is not None else "",
                epoch=holder.epoch if holder is not None else 0,
                assigned_member=assignment.get(shard_id, ""),
            )
        )
    return counter_pb2.ShardMap(
        shard_count=shard_count,
        owners=owners,
        members=[
            counter_pb2.CounterMember(member=m.member, address=m.address, leaving=m.leaving)
            for m in members
        ],
    )


async def _cancel(tasks: list[asyncio.Task[None]]) -> None:
    for task in tasks:
        task.cancel()
    for task in tasks:
        with contextlib.suppress(asyncio.CancelledError, Exception):
            await task
