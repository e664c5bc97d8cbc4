"""Which edges answer: probes every peer's HTTP `/healthz` on a fixed interval.

This edge itself counts as healthy while it serves. A peer is healthy after a 200 within
`timeout_s` and unhealthy after anything else; before its first probe it is unhealthy, so
the resolver never sends clients to an edge nobody has seen answer.
"""

from __future__ import annotations

import asyncio
import logging

import aiohttp

logger = logging.getLogger(__name__)


class PeerHealth:
    def __init__(
        self, own_name: str, peer_urls: dict[str, str], interval_s: float, timeout_s: float
    ) -> None:
        self._own_name = own_name
        self._peer_urls = {name: url for name, url in peer_urls.items() if name != own_name}
        self._interval_s = interval_s
        self._timeout = aiohttp.ClientTimeout(total=timeout_s)
        self._healthy: set[str] = set()
        self._serving = True

    def healthy(self) -> frozenset[str]:
        own = {self._own_name} if self._serving else set()
        return frozenset(own | self._healthy)

    def stop_serving(self) -> None:
        """Shutting down: stop recommending this edge."""
        self._serving = False

    async def _probe(self, session: aiohttp.ClientSession, name: str, url: str) -> None:
        try:
            async with session.get(f"{url}/healthz") as response:
                ok = response.status == 200
        except (aiohttp.ClientError, TimeoutError):
            ok = False
        if ok and name not in self._healthy:
            logger.info("peer edge healthy", extra={"fields": {"edge": name}})
            self._healthy.add(name)
        elif not ok and name in self._healthy:
            logger.warning("peer edge unhealthy", extra={"fields": {"edge": name}})
            self._healthy.discard(name)

    async def run(self) -> None:
        """Probes until cancelled (a background loop of the service)."""
        if not self._peer_urls:
            return
        async with aiohttp.ClientSession(timeout=self._timeout) as session:
            while True:
                await asyncio.gather(
                    *(self._probe(session, n, u) for n, u in self._peer_urls.items())
                )
                await asyncio.sleep(self._interval_s)
