"""The edge's HTTP server: the routes of players (HLS), `/resolve`, `/healthz` and CORS
preflight, run by aiohttp on the service's (uvloop) event loop beside the gRPC server.

Shutdown follows aiohttp's documented order (`AppRunner.cleanup`): stop listening, close idle
keep-alive connections, let in-flight responses finish within `shutdown_timeout_s`, then
cancel what is left and run cleanup hooks. `/healthz` turns 503 first, so balancers and
peer edges stop sending players here before the port closes.
"""

from __future__ import annotations

import logging

from aiohttp import web

logger = logging.getLogger(__name__)

PREFLIGHT_MAX_AGE_S = 86_400
LISTEN_BACKLOG = 4096
"""A viral reel brings connection bursts; the kernel caps it at net.core.somaxconn."""
ALLOWED_REQUEST_HEADERS = (
    "Range, If-None-Match, If-Range, If-Modified-Since, Save-Data, Viewport-Height, "
    "Sec-CH-Viewport-Height, DPR, Sec-CH-DPR, Downlink"
)


class EdgeHttpServer:
    def __init__(
        self,
        app: web.Application,
        address: str,
        *,
        reuse_port: bool,
        shutdown_timeout_s: float,
        allow_origin: str,
    ) -> None:
        self._app = app
        host, _, port = address.rpartition(":")
        self._host = host.strip("[]")
        self._port = int(port)
        self._reuse_port = reuse_port
        self._allow_origin = allow_origin
        self._serving = True
        self._runner = web.AppRunner(
            app, access_log=None, handle_signals=False, shutdown_timeout=shutdown_timeout_s
        )
        app.router.add_get("/healthz", self._health)
        app.router.add_route("OPTIONS", "/{tail:.*}", self._preflight)
        self.port = 0
        self._started = False

    async def _health(self, request: web.Request) -> web.Response:
        if not self._serving:
            return web.Response(status=503, text="draining\n")
        return web.Response(text="ok\n", headers={"Cache-Control": "no-store"})

    async def _preflight(self, request: web.Request) -> web.Response:
        requested = request.headers.get("Access-Control-Request-Headers", "")
        allowed = ALLOWED_REQUEST_HEADERS
        names = [part.strip() for part in requested.split(",") if part.strip()]
        if names and len(names) <= 16 and all(n.replace("-", "").isalnum() for n in names):
            allowed = f"{ALLOWED_REQUEST_HEADERS}, {requested}"
        return web.Response(
            status=204,
            headers={
                "Access-Control-Allow-Origin": self._allow_origin,
                "Access-Control-Allow-Methods": "GET, HEAD, OPTIONS",
                "Access-Control-Allow-Headers": allowed,
                "Access-Control-Max-Age": str(PREFLIGHT_MAX_AGE_S),
            },
        )

    async def start(self) -> None:
        self._started = True
        await self._runner.setup()
        site = web.TCPSite(
            self._runner,
            self._host,
            self._port,
            backlog=LISTEN_BACKLOG,
            reuse_port=self._reuse_port or None,
        )
        await site.start()
        self.port = int(self._runner.addresses[0][1])
        logger.info("http serving", extra={"fields": {"host": self._host, "port": self.port}})

    def stop_serving(self) -> None:
        """Health turns 503 (first step of the shutdown)."""
        self._serving = False

    async def stop(self) -> None:
        """Stops serving (idempotent; a no-op when never started)."""
        self._serving = False
        if self._started:
            self._started = False
            await self._runner.cleanup()
