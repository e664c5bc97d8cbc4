"""Reel state changes decided by moderation, and the purge fan-out to every edge.

A takedown writes REMOVED in the origin's catalog (the origin then refuses the reel's media
and `GetReels` reports it removed), then asks every edge to purge it: `PurgeReel` drops the
edge's cached segments and playlists and its reel-directory entry, so the edge answers 410
and refuses events of the reel (its counts freeze) at once instead of after its cache TTL.
Every edge is called in parallel and retried until it confirms or `deadline_s` passes.
"Every edge" is read from the service registry at each fan-out (serving and leaving edges:
one that is draining still holds a cache), plus any configured addresses; if the registry
does not answer, the edges it listed last time are used.
Hiding (IN_REVIEW) and age-restricting purge the same way (an edge re-learns the reel's
state, restriction included, on its next request); publishing purges only when it lifts an
age restriction.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Sequence
from dataclasses import dataclass

from grpc import aio

from origin.reel_catalog import ReelCatalog
from protos import edge_pb2, edge_pb2_grpc, origin_pb2
from reelstream.cassandra_client import StoreUnavailable
from reelstream.channels import open_channel
from reelstream.service_registry import ServiceRegistry

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class PurgeReport:
    confirmed: tuple[str, ...]
    failed: tuple[str, ...]
    seconds: float

    def summary(self) -> str:
        text = f"purged at {len(self.confirmed)} edges in {self.seconds:.3f} s"
        if self.failed:
            text += f"; NOT confirmed by {', '.join(self.failed)}"
        return text


class ReelStates:
    def __init__(
        self,
        catalog: ReelCatalog,
        edge_addresses: Sequence[str],
        rpc_timeout_s: float,
        deadline_s: float,
        registry: ServiceRegistry | None = None,
    ) -> None:
        self._catalog = catalog
        self._configured = tuple(edge_addresses)
        self._registry = registry
        self._registered: tuple[str, ...] = ()
        self._edges: dict[str, aio.Channel] = {}
        self._rpc_timeout_s = rpc_timeout_s
        self._deadline_s = deadline_s

    async def edge_addresses(self) -> list[str]:
        """Every edge to purge now: the registered ones and the configured ones."""
        if self._registry is not None:
            try:
                members = await self._registry.members("edge")
                self._registered = tuple(m.grpc_address for m in members if m.grpc_address)
            except StoreUnavailable as exc:
                logger.warning(
                    "registry unavailable: purging the edges it listed last",
                    extra={"fields": {"error": exc}},
                )
        addresses = list(dict.fromkeys([*self._registered, *self._configured]))
        for gone in set(self._edges) - set(addresses):
            await self._edges.pop(gone).close()
        for address in addresses:
            if address not in self._edges:
                self._edges[address] = open_channel(address)
        return addresses

    @property
    def catalog(self) -> ReelCatalog:
        return self._catalog

    async def remove(self, reel_id: int, reason: str) -> PurgeReport:
        await self._catalog.set_state(reel_id, origin_pb2.REEL_STATE_REMOVED, reason)
        return await self.purge_everywhere(reel_id, reason)

    async def hide(self, reel_id: int, reason: str) -> PurgeReport:
        await self._catalog.set_state(reel_id, origin_pb2.REEL_STATE_IN_REVIEW, reason)
        return await self.purge_everywhere(reel_id, reason)

    async def publish(self, reel_id: int, reason: str) -> None:
        """PUBLISHED for everyone (an age restriction is lifted)."""
        reel = await self._catalog.get(reel_id)
        await self._catalog.set_state(reel_id, origin_pb2.REEL_STATE_PUBLISHED, reason)
        if reel is not None and reel.age_restricted:
            await self._catalog.set_age_restricted(reel_id, False)
            await self.purge_everywhere(reel_id, reason)

    async def age_restrict(self, reel_id: int, reason: str) -> PurgeReport:
        """PUBLISHED for age-verified viewers only."""
        await self._catalog.set_age_restricted(reel_id, True)
        await self._catalog.set_state(reel_id, origin_pb2.REEL_STATE_PUBLISHED, reason)
        return await self.purge_everywhere(reel_id, reason)

    async def purge_everywhere(self, reel_id: int, reason: str) -> PurgeReport:
        started = time.monotonic()
        edges = await self.edge_addresses()
        results = await asyncio.gather(
            *(self._purge_one(address, reel_id, reason, started) for address in edges)
        )
        confirmed = tuple(a for a, ok in zip(edges, results, strict=True) if ok)
        failed = tuple(a for a, ok in zip(edges, results, strict=True) if not ok)
        report = PurgeReport(confirmed, failed, time.monotonic() - started)
        log = logger.warning if failed else logger.info
        log("purge fan-out", extra={"fields": {"reel": reel_id, "result": report.summary()}})
        return report

    async def _purge_one(self, address: str, reel_id: int, reason: str, started: float) -> bool:
        stub = edge_pb2_grpc.EdgeServiceStub(self._edges[address])
        delay_s = 0.05
        while True:
            left = self._deadline_s - (time.monotonic() - started)
            if left <= 0:
                return False
            try:
                await stub.PurgeReel(
                    edge_pb2.PurgeReelRequest(reel_id=reel_id, reason=reason),
                    timeout=min(self._rpc_timeout_s, left),
                )
                return True
            except aio.AioRpcError as exc:
                logger.warning(
                    "purge not confirmed, retrying",
                    extra={"fields": {"edge": address, "reel": reel_id, "code": exc.code().name}},
                )
            await asyncio.sleep(min(delay_s, max(0.0, left)))
            delay_s = min(delay_s * 2, 1.0)

    async def close(self) -> None:
        for channel in reversed(list(self._edges.values())):
            await channel.close()
