"""What the edge knows about reels (exists? removed? age-restricted? how long?), cached from
the origin. Events are validated with it and, when `validate_reels` is on, every HLS request
is gated by it (410 removed, 403 age-restricted without an age-verified token).

Misses are coalesced: however many calls miss the same reel at once, one GetReels call to the
origin asks for it, and every miss waiting at that moment shares that call (up to 1,000 ids
per call). Known reels are cached for `ttl_s`, unknown ones for a shorter time so a new
upload becomes countable quickly. If the origin cannot answer, an expired entry is used
as it was (a stale state beats a guess); a reel with no entry at all gets `ASSUMED`:
events are accepted as if it existed (counting something is better than losing real views
while the origin restarts) and HLS answers 503 (its age restriction is unknown). The
metric `edge_reel_lookup_failures_total` shows when that happens.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import OrderedDict
from collections.abc import Iterable

from grpc import aio
from prometheus_client import Counter

from edge.event_validation import ReelInfo
from protos import origin_pb2, origin_pb2_grpc
from reelstream.member_pool import MemberPool

logger = logging.getLogger(__name__)

LOOKUPS = Counter("edge_reel_lookups_total", "Reels asked of the origin")
LOOKUP_FAILURES = Counter("edge_reel_lookup_failures_total", "Failed origin lookups")
MAX_IDS_PER_CALL = 1000


# Returned when the origin is unreachable and the reel was never seen: validate as if the
# reel existed. Compared by identity (`info is ASSUMED`).
ASSUMED = ReelInfo(removed=False, duration_ms=0)


class ReelDirectory:
    def __init__(
        self,
        origin: MemberPool,
        max_entries: int,
        ttl_s: float,
        unknown_ttl_s: float,
        timeout_s: float,
    ) -> None:
        # Balanced over the origin replicas; the pool (owned by the edge) swaps channels.
        self._origins = origin
        self._max_entries = max_entries
        self._ttl_s = ttl_s
        self._unknown_ttl_s = unknown_ttl_s
        self._timeout_s = timeout_s
        self._entries: OrderedDict[int, tuple[float, ReelInfo | None]] = OrderedDict()
        self._in_flight: dict[int, asyncio.Future[ReelInfo | None]] = {}
        # Reels forgotten while a lookup of them was in flight: that answer may predate the
        # takedown, so it is passed to its waiters but not cached.
        self._forgotten_in_flight: set[int] = set()

    async def lookup(self, reel_ids: Iterable[int]) -> dict[int, ReelInfo | None]:
        now = time.monotonic()
        known: dict[int, ReelInfo | None] = {}
        waits: dict[int, asyncio.Future[ReelInfo | None]] = {}
        to_fetch: list[int] = []
        for reel_id in set(reel_ids):
            cached = self._entries.get(reel_id)
            if cached is not None and cached[0] > now:
                known[reel_id] = cached[1]
            elif reel_id in self._in_flight:
                waits[reel_id] = self._in_flight[reel_id]
            else:
                future: asyncio.Future[ReelInfo | None] = asyncio.get_running_loop().create_future()
                self._in_flight[reel_id] = waits[reel_id] = future
                to_fetch.append(reel_id)
        for start in range(0, len(to_fetch), MAX_IDS_PER_CALL):
            await self._fetch(to_fetch[start : start + MAX_IDS_PER_CALL])
        for reel_id, future in waits.items():
            known[reel_id] = await asyncio.shield(future)
        return known

    async def _fetch(self, reel_ids: list[int]) -> None:
        LOOKUPS.inc(len(reel_ids))
        results: dict[int, ReelInfo | None] = dict.fromkeys(reel_ids)
        cache = True
        try:
            response = await self._origins.stub(origin_pb2_grpc.OriginServiceStub).GetReels(
                origin_pb2.GetReelsRequest(reel_ids=reel_ids), timeout=self._timeout_s
            )
            for brief in response.reels:
                results[brief.reel_id] = ReelInfo(
                    removed=brief.state == origin_pb2.REEL_STATE_REMOVED,
                    duration_ms=brief.duration_ms,
                    age_restricted=brief.age_restricted,
                )
        except aio.AioRpcError as exc:
            LOOKUP_FAILURES.inc(len(reel_ids))
            logger.warning(
                "origin lookup failed; accepting events of these reels unchecked",
                extra={"fields": {"reels": len(reel_ids), "code": exc.code().name}},
            )
            results = {reel_id: self._stale(reel_id) for reel_id in reel_ids}
            cache = False  # never cache a guess
        now = time.monotonic()
        for reel_id, info in results.items():
            if cache and reel_id not in self._forgotten_in_flight:
                ttl = self._ttl_s if info is not None else self._unknown_ttl_s
                self._entries[reel_id] = (now + ttl, info)
                self._entries.move_to_end(reel_id)
            self._forgotten_in_flight.discard(reel_id)
            future = self._in_flight.pop(reel_id, None)
            if future is not None and not future.done():
                future.set_result(info)
        while len(self._entries) > self._max_entries:
            self._entries.popitem(last=False)

    def _stale(self, reel_id: int) -> ReelInfo:
        entry = self._entries.get(reel_id)
        return entry[1] if entry is not None and entry[1] is not None else ASSUMED

    def forget(self, reel_id: int) -> None:
        """Drops a cached entry (a takedown must not wait for the TTL)."""
        self._entries.pop(reel_id, None)
        if reel_id in self._in_flight:
            self._forgotten_in_flight.add(reel_id)

    async def close(self) -> None:
        """Nothing to release: the origin pool is the edge's."""
