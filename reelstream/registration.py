"""This process's row in the service registry, kept alive by the service shell.

The heartbeat connects to Cassandra in the background, so a tier that does not otherwise
need Cassandra (the edge) starts and serves even while Cassandra is unreachable: it is then
only missing from discovery, and says so in its log. The row is written as `serving` once
the gRPC server answers health checks as SERVING, as `leaving` the moment the process is
told to stop (before its health turns NOT_SERVING), and deleted after it closed; a crash
leaves it to expire after `registry_ttl_s`.

Counter processes heartbeat from their shard host instead (their shard assignment is
computed from the same rows at the same rhythm), through the same `ServiceRegistry`.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import uuid
from dataclasses import dataclass, replace

from reelstream.cassandra_client import (
    CassandraClient,
    CassandraConfigFields,
    CassandraSettings,
    StoreUnavailable,
)
from reelstream.schema import apply_registry_schema
from reelstream.service_registry import LEAVING, SERVING, ServiceMember, ServiceRegistry

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class RegistryConfigFields(CassandraConfigFields):
    """The registry part of a tier's config (the Cassandra contact points are the only
    addresses configured by hand; everything else is discovered)."""

    advertise_grpc_address: str = ""
    """host:port other processes dial to reach this one (empty: `grpc_address`)."""
    registry_heartbeat_s: float = 1.0
    """How often this process renews its registry row (0: do not register)."""
    registry_ttl_s: float = 5.0
    """A row not renewed for this long is no longer a member (a crashed process)."""
    discovery_refresh_s: float = 1.0
    """How often the members this process calls are re-read from the registry."""


@dataclass(frozen=True)
class Registration:
    """What this process writes in the registry, and how often."""

    member: ServiceMember
    cassandra: CassandraSettings
    heartbeat_s: float
    ttl_s: float


def registration_of(
    kind: str,
    name: str,
    config: RegistryConfigFields,
    grpc_address: str,
    http_address: str = "",
    metrics_address: str = "",
) -> Registration | None:
    """This process's registration, or None when `registry_heartbeat_s` is 0."""
    if config.registry_heartbeat_s <= 0:
        return None
    member = ServiceMember(
        kind=kind,
        member=name,
        grpc_address=config.advertise_grpc_address or grpc_address,
        http_address=http_address,
        metrics_address=metrics_address,
        # Tells this incarnation's row from a restarted process's (conditional delete).
        owner=uuid.uuid4().hex,
    )
    return Registration(
        member, CassandraSettings.of(config), config.registry_heartbeat_s, config.registry_ttl_s
    )


class MemberHeartbeat:
    """Keeps this process's registry row current; its `registry` serves discovery too."""

    def __init__(self, registration: Registration) -> None:
        self._registration = registration
        self._client = CassandraClient(registration.cassandra)
        self.registry = ServiceRegistry(self._client)
        self._state: str | None = None  # not written before the server is SERVING
        self._connected = asyncio.Event()
        self._task: asyncio.Task[None] | None = None

    @property
    def member(self) -> ServiceMember:
        return self._registration.member

    def start(self) -> None:
        """Connects and heartbeats in the background (inside the running loop)."""
        self._task = asyncio.create_task(self._run(), name="registry-heartbeat")

    async def _run(self) -> None:
        delay_s = 1.0
        while not self._connected.is_set():
            try:
                await self._client.connect(max_wait_s=30.0)
                await apply_registry_schema(self._client)
                await self.registry.prepare()
                self._connected.set()
            except Exception as exc:  # unreachable, or a schema change refused meanwhile
                logger.warning(
                    "service registry unreachable: not discoverable yet",
                    extra={"fields": {"error": exc, "retry_in_s": delay_s}},
                )
                await asyncio.sleep(delay_s)
                delay_s = min(delay_s * 2, 10.0)
        while True:
            if self._state is not None:
                await self._write(self._state)
            await asyncio.sleep(self._registration.heartbeat_s)

    async def _write(self, state: str) -> None:
        member = replace(self._registration.member, state=state)
        try:
            await self.registry.heartbeat(member, int(self._registration.ttl_s * 1000))
        except StoreUnavailable as exc:
            logger.warning("registry heartbeat failed", extra={"fields": {"error": exc}})

    async def serving(self) -> None:
        """Marks this process `serving` (written now if connected, else once it is)."""
        self._state = SERVING
        if self._connected.is_set():
            await self._write(SERVING)

    async def leave(self, timeout_s: float = 2.0) -> None:
        """Marks this process `leaving`, so routers reading the registry stop choosing it."""
        self._state = LEAVING
        if self._connected.is_set():
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._write(LEAVING), timeout_s)

    async def close(self, timeout_s: float = 2.0) -> None:
        """Stops heartbeating and deletes the row (unless a newer incarnation wrote it)."""
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        if self._connected.is_set():
            member = self._registration.member
            with contextlib.suppress(TimeoutError, StoreUnavailable):
                await asyncio.wait_for(
                    self.registry.remove(member.kind, member.member, member.owner), timeout_s
                )
        await self._client.close()
