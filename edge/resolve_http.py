"""`GET /resolve?region=<region>`: the nearest healthy edge for a client region, as JSON
`{"region", "edge", "url", "latency_ms"}`. 400 without a valid region, 404 for a region the
latency map does not know, 503 when none of the region's edges is healthy."""

from __future__ import annotations

from collections.abc import Callable, Set

from aiohttp import web

from edge.nearest_edge import REGION, LatencyMap


class ResolveRoute:
    def __init__(
        self,
        latencies: LatencyMap,
        edge_urls: dict[str, str],
        healthy: Callable[[], Set[str]],
    ) -> None:
        self._latencies = latencies
        self._edge_urls = edge_urls
        self._healthy = healthy

    def add_to(self, app: web.Application) -> None:
        app.router.add_get("/resolve", self.resolve)

    async def resolve(self, request: web.Request) -> web.Response:
        region = request.query.get("region", "")
        if not REGION.fullmatch(region):
            return web.json_response(
                {"error": "region must be 1-64 letters, digits, '.', '_' or '-'"}, status=400
            )
        if region not in self._latencies.regions:
            return web.json_response(
                {"error": f"unknown region {region!r}", "regions": self._latencies.regions},
                status=404,
            )
        healthy = {edge for edge in self._healthy() if edge in self._edge_urls}
        choice = self._latencies.nearest(region, healthy)
        if choice is None:
            return web.json_response(
                {"error": f"no healthy edge serves {region!r}"},
                status=503,
                headers={"Retry-After": "2"},
            )
        return web.json_response(
            {
                "region": region,
                "edge": choice.edge,
                "url": self._edge_urls[choice.edge],
                "latency_ms": choice.latency_ms,
            },
            headers={"Cache-Control": "no-store", "Access-Control-Allow-Origin": "*"},
        )
