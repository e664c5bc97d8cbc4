"""The bootstrap every tier shares: uvloop, a grpc.aio server with health checking and
reflection, Prometheus metrics over HTTP, signal handling and an ordered graceful shutdown.

Shutdown order (first SIGTERM/SIGINT): registry row `leaving` -> health NOT_SERVING ->
a short pause while clients' health watches drop this member -> a component with a
`hand_off(timeout_s)` method gives its work to its peers while its server still answers ->
stop accepting RPCs and let in-flight ones finish within the grace period -> the component
drains its buffers (with a timeout) -> clients close in reverse order of opening. A second
signal exits at once.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import logging
import os
import signal
import sys
from collections.abc import Callable, Coroutine, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

import uvloop
from grpc import aio
from grpc_health.v1 import health, health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection
from prometheus_client import start_http_server

from reelstream.abort_cycles import AbortCycleInterceptor
from reelstream.caller_policy import CallerPolicyInterceptor
from reelstream.channels import MAX_MESSAGE_BYTES
from reelstream.grpc_metrics import MetricsInterceptor
from reelstream.loop_lag import stop_watching, time_gc_pauses, watch_loop_lag
from reelstream.malformed_requests import MalformedRequestInterceptor
from reelstream.rate_limits import CallerBuckets, RateLimitInterceptor
from reelstream.registration import MemberHeartbeat, RegistryConfigFields, registration_of
from reelstream.security_settings import SecuritySettings, security_settings
from reelstream.transport_security import server_credentials, use_identity

logger = logging.getLogger(__name__)


class Component(Protocol):
    """What a tier plugs into the shell."""

    async def start(self) -> None:
        """Connects to stores and starts background tasks (inside the running loop)."""
        ...

    def register(self, server: aio.Server) -> Sequence[str]:
        """Adds servicers to `server` (after `start`); returns their full service names."""
        ...

    async def drain(self, timeout_s: float) -> None:
        """Flushes buffers after the server stopped accepting work."""
        ...

    async def close(self) -> None:
        """Releases clients and leases."""
        ...


@dataclass(frozen=True)
class ShellConfig:
    """Where and how the shell serves."""

    service_name: str
    grpc_address: str
    metrics_port: int
    identity: str = ""
    """The tier's certificate identity (edge, counter, ...); REELSTREAM_IDENTITY overrides."""
    shutdown_grace_s: float = 5.0
    drain_timeout_s: float = 10.0
    max_concurrent_rpcs: int = 2000
    membership: MemberHeartbeat | None = None
    """This process's registry row (reelstream/registration.py); None: not registered."""
    leave_pool_s: float = 0.5
    """Between health NOT_SERVING and refusing new calls: time for clients' health watches
    to take this server out of their round_robin pools, so none of them picks it after."""


def metrics_host() -> str:
    """Address of the /metrics listener: loopback unless `REELSTREAM_METRICS_HOST` says
    otherwise (a pod sets 0.0.0.0 so that Prometheus can scrape it)."""
    return os.environ.get("REELSTREAM_METRICS_HOST", "127.0.0.1")


def membership_of(
    kind: str,
    name: str,
    config: RegistryConfigFields,
    grpc_address: str,
    metrics_port: int,
    http_address: str = "",
) -> MemberHeartbeat | None:
    """This process's registry heartbeat (None when the tier's config switches it off)."""
    registration = registration_of(
        kind,
        name,
        config,
        grpc_address,
        http_address=http_address,
        metrics_address=f"{metrics_host()}:{metrics_port}" if metrics_port else "",
    )
    return MemberHeartbeat(registration) if registration is not None else None


def server_options(max_streams_per_connection: int = 1_000) -> list[tuple[str, Any]]:
    """Channel options of every Reelstream server."""
    return [
        ("grpc.max_receive_message_length", MAX_MESSAGE_BYTES),
        ("grpc.max_send_message_length", MAX_MESSAGE_BYTES),
        ("grpc.so_reuseport", 0),
        ("grpc.keepalive_time_ms", 20_000),
        ("grpc.keepalive_timeout_ms", 10_000),
        ("grpc.http2.min_ping_interval_without_data_ms", 5_000),
        ("grpc.keepalive_permit_without_calls", 1),
        # One connection cannot take the whole server's maximum_concurrent_rpcs.
        ("grpc.max_concurrent_streams", max_streams_per_connection),
    ]


def security_interceptors(security: SecuritySettings) -> list[aio.ServerInterceptor]:
    """Authorisation by caller identity (mutual TLS only) and per-caller rate limits."""
    interceptors: list[aio.ServerInterceptor] = []
    if not security.plaintext:
        interceptors.append(CallerPolicyInterceptor())
    if security.rate_limit_rpcs_per_s > 0:
        buckets = CallerBuckets(
            security.rate_limit_rpcs_per_s,
            security.rate_limit_burst,
            security.rate_limit_max_callers,
        )
        interceptors.append(RateLimitInterceptor(buckets, security.rate_limit_rpcs_per_s))
    return interceptors


async def serve(config: ShellConfig, build_component: Callable[[], Component]) -> None:
    """Builds the component once this process's identity is declared (its constructor may
    open channels, which present that identity), runs it behind a gRPC server until
    SIGTERM/SIGINT, then shuts down in order."""
    stop_requested = asyncio.Event()
    loop = asyncio.get_running_loop()

    def on_signal(signum: int) -> None:
        if stop_requested.is_set():
            logger.warning("second signal: exiting now", extra={"fields": {"signal": signum}})
            os._exit(1)
        logger.info("shutdown requested", extra={"fields": {"signal": signum}})
        stop_requested.set()

    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, on_signal, signum)

    # Certificates are checked before anything starts: without them (and without the
    # explicit plaintext switch) the process refuses to start and says why.
    security = security_settings()
    identity = use_identity(config.identity)
    credentials = server_credentials(identity, security)
    if credentials is None:
        logger.warning("REELSTREAM_PLAINTEXT=1: serving without TLS or caller identities")
    component = build_component()
    membership = config.membership

    # Stores first: a server that answers before its journal or lease exists would fail
    # every call; until then the process is simply not listening (health not SERVING).
    # A signal during start-up (e.g. while Cassandra is still unreachable) stops it cleanly.
    starting = asyncio.create_task(component.start())
    stop_waiter = asyncio.create_task(stop_requested.wait())
    await asyncio.wait({starting, stop_waiter}, return_when=asyncio.FIRST_COMPLETED)
    if not starting.done():
        starting.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await starting
        await component.close()
        logger.info("stopped during start-up")
        return
    stop_waiter.cancel()
    starting.result()  # a failed start-up raises here
    if membership is not None:
        # After the component's own schema work (two schema changes racing in one process
        # failed a start-up); discovery falls back to configured seeds until it connects.
        membership.start()
    _tune_garbage_collector()
    time_gc_pauses()
    server = aio.server(
        # Outermost first: refused calls free their requests at once; metrics count every
        # call, refusals of undecodable requests included.
        interceptors=[
            AbortCycleInterceptor(),
            MetricsInterceptor(),
            *security_interceptors(security),
            MalformedRequestInterceptor(),
        ],
        options=server_options(security.max_streams_per_connection),
        maximum_concurrent_rpcs=config.max_concurrent_rpcs,
    )
    health_servicer = health.aio.HealthServicer()
    health_pb2_grpc.add_HealthServicer_to_server(health_servicer, server)
    service_names = list(component.register(server))
    reflection.enable_server_reflection(
        [*service_names, health.SERVICE_NAME, reflection.SERVICE_NAME], server
    )
    port = (
        server.add_insecure_port(config.grpc_address)
        if credentials is None
        else server.add_secure_port(config.grpc_address, credentials)
    )
    if port == 0:
        raise RuntimeError(f"cannot bind gRPC address {config.grpc_address}")
    if config.metrics_port:
        start_http_server(config.metrics_port, addr=metrics_host())

    await server.start()
    for name in ["", *service_names]:
        await health_servicer.set(name, health_pb2.HealthCheckResponse.SERVING)
    if membership is not None:
        await membership.serving()
    logger.info(
        "serving",
        extra={
            "fields": {
                "grpc": config.grpc_address,
                "transport": "plaintext" if credentials is None else f"mtls as {identity}",
                "metrics_port": config.metrics_port,
                "services": ",".join(service_names),
            }
        },
    )
    lag_watcher = asyncio.create_task(watch_loop_lag())
    try:
        await stop_requested.wait()
    finally:
        # Leave the pools first (registry readers, then health watchers), then stop
        # taking calls: a client balancing over the members sees no refused call.
        if membership is not None:
            await membership.leave()
        await health_servicer.enter_graceful_shutdown()
        await asyncio.sleep(config.leave_pool_s)
        # A counter process hands its logical shards off first: stopping the server would
        # close its port while it still holds their leases (the shards unreachable for the
        # whole grace period, which long FollowCounts streams always use up).
        hand_off = getattr(component, "hand_off", None)
        if hand_off is not None:
            try:
                await asyncio.wait_for(hand_off(config.drain_timeout_s), config.drain_timeout_s + 1)
            except TimeoutError:
                logger.error("hand-off timed out; the rest is handed off in the drain")
        await server.stop(config.shutdown_grace_s)
        try:
            await asyncio.wait_for(
                component.drain(config.drain_timeout_s), config.drain_timeout_s + 1
            )
        except TimeoutError:
            logger.error("drain timed out; unflushed work stays in durable storage")
        await component.close()
        if membership is not None:
            await membership.close()
        await stop_watching(lag_watcher)
        logger.info("stopped")


# Allocations between young collections. A shard holds a few objects per reel for hundreds
# of thousands of reels; with CPython's default (700) the collector ran so often that a
# micro-benchmark of applying and snapshotting 100k reels spent about half its time in it.
# Our hot paths create no reference cycles, so collections rarely free anything.
GC_YOUNG_THRESHOLD = 50_000


def _tune_garbage_collector() -> None:
    """Moves what start-up allocated (modules, recovered state) out of the collector's
    sight and makes young collections rarer (the approach Instagram described for Django)."""
    gc.collect()
    gc.freeze()
    _, middle, old = gc.get_threshold()
    gc.set_threshold(GC_YOUNG_THRESHOLD, middle, old)


def run(main: Callable[[], Coroutine[Any, Any, None]]) -> None:
    """Runs `main` on a uvloop event loop (no global policy change).

    Exits 0 after a graceful shutdown, 1 with the reason logged when start-up or the
    service fails.
    """
    try:
        with (
            asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner,
            contextlib.suppress(KeyboardInterrupt),
        ):
            runner.run(main())
    except Exception as exc:
        logger.critical("fatal: %s", exc, exc_info=True)
        sys.exit(1)
