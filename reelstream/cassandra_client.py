"""asyncio access to Cassandra through the DataStax driver.

The driver has no asyncio API: `execute_async` returns a ResponseFuture whose callbacks run
on the driver's I/O thread, so results are handed to the event loop with
`call_soon_threadsafe`. Connecting retries with capped exponential backoff and says why,
so a service started before Cassandra waits instead of crash-looping silently.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from cassandra import ConsistencyLevel
from cassandra.cluster import (
    EXEC_PROFILE_DEFAULT,
    Cluster,
    ExecutionProfile,
    ResponseFuture,
    Session,
)
from cassandra.policies import ExponentialReconnectionPolicy, RoundRobinPolicy, TokenAwarePolicy
from cassandra.query import PreparedStatement, SimpleStatement

from reelstream.cassandra_rows import named_tuple_rows
from reelstream.settings import ConfigError

logger = logging.getLogger(__name__)


class StoreUnavailable(RuntimeError):
    """Cassandra could not be reached or did not answer in time."""


@dataclass(frozen=True)
class CassandraConfigFields:
    """The Cassandra part of a tier's config (counter and origin inherit it)."""

    cassandra_hosts: tuple[str, ...] = ("127.0.0.1",)
    """Cassandra contact points."""
    cassandra_port: int = 9042
    """Cassandra native transport port."""
    keyspace: str = "reelstream"
    """Keyspace holding every table."""
    replication: str = "SimpleStrategy:1"
    """Keyspace replication when it is created: `SimpleStrategy:<rf>` or
    `NetworkTopologyStrategy:<dc>=<rf>,...` (an external cluster)."""
    consistency: str = "LOCAL_QUORUM"
    """Consistency level of reads and writes (lightweight transactions use SERIAL). On one
    node (RF 1) LOCAL_QUORUM is ONE; on three nodes with RF 3, QUORUM or LOCAL_QUORUM lets
    any single node be down (docs/reliability.md)."""

    def __post_init__(self) -> None:
        # Checked at start-up: a typo would otherwise surface as "cannot reach Cassandra"
        # after every connection retry.
        if self.consistency not in ConsistencyLevel.name_to_value:
            raise ConfigError(
                f"consistency {self.consistency!r}: use one of"
                f" {', '.join(sorted(ConsistencyLevel.name_to_value))}"
            )
        try:
            CassandraSettings.of(self).replication_cql()
        except ValueError as exc:
            raise ConfigError(str(exc)) from exc


@dataclass(frozen=True)
class CassandraSettings:
    """How to reach Cassandra and how safely to write."""

    hosts: tuple[str, ...]
    port: int
    keyspace: str
    # "SimpleStrategy:<rf>" or "NetworkTopologyStrategy:<dc>=<rf>[,<dc>=<rf>...]"
    replication: str = "SimpleStrategy:1"
    consistency: str = "LOCAL_QUORUM"
    request_timeout_s: float = 10.0

    @classmethod
    def of(cls, config: CassandraConfigFields) -> CassandraSettings:
        return cls(
            hosts=config.cassandra_hosts,
            port=config.cassandra_port,
            keyspace=config.keyspace,
            replication=config.replication,
            consistency=config.consistency,
        )

    def replication_cql(self) -> str:
        """The keyspace's replication map as CQL, e.g. {'class': 'SimpleStrategy', ...}.

        Raises:
            ValueError: the replication setting is malformed.
        """
        strategy, _, spec = self.replication.partition(":")
        if strategy == "SimpleStrategy" and spec.isdigit() and int(spec) > 0:
            return f"{{'class': 'SimpleStrategy', 'replication_factor': {int(spec)}}}"
        if strategy == "NetworkTopologyStrategy" and spec:
            parts = []
            for item in spec.split(","):
                dc, _, factor = item.partition("=")
                if not dc.strip().replace("_", "").isalnum() or not factor.strip().isdigit():
                    raise ValueError(f"bad datacenter entry {item!r} in {self.replication!r}")
                parts.append(f"'{dc.strip()}': {int(factor)}")
            return "{'class': 'NetworkTopologyStrategy', " + ", ".join(parts) + "}"
        raise ValueError(
            f"replication {self.replication!r}: use SimpleStrategy:<rf> or"
            " NetworkTopologyStrategy:<dc>=<rf>,..."
        )


Row = Any


class CassandraClient:
    """One driver session per process, opened inside the running loop."""

    def __init__(self, settings: CassandraSettings) -> None:
        self._settings = settings
        self._cluster: Cluster | None = None
        self._session: Session | None = None

    @property
    def session(self) -> Session:
        if self._session is None:
            raise StoreUnavailable("Cassandra session is not connected")
        return self._session

    @property
    def keyspace(self) -> str:
        return self._settings.keyspace

    @property
    def settings(self) -> CassandraSettings:
        return self._settings

    async def connect(self, max_wait_s: float = 300.0) -> None:
        """Connects, retrying with backoff until `max_wait_s` has passed.

        Raises:
            StoreUnavailable: Cassandra never answered within `max_wait_s`.
        """
        loop = asyncio.get_running_loop()
        deadline = loop.time() + max_wait_s
        delay_s = 0.5
        attempt = 0
        while True:
            attempt += 1
            try:
                self._cluster, self._session = await asyncio.to_thread(self._connect_blocking)
                logger.info(
                    "connected to cassandra",
                    extra={"fields": {"hosts": ",".join(self._settings.hosts)}},
                )
                return
            except Exception as exc:
                if loop.time() + delay_s > deadline:
                    raise StoreUnavailable(
                        f"cannot reach Cassandra at {self._settings.hosts}:{self._settings.port}"
                        f" after {attempt} attempts: {exc}"
                    ) from exc
                logger.warning(
                    "cassandra unreachable, retrying",
                    extra={"fields": {"attempt": attempt, "retry_in_s": delay_s, "error": exc}},
                )
                await asyncio.sleep(delay_s)
                delay_s = min(delay_s * 2, 5.0)

    def _connect_blocking(self) -> tuple[Cluster, Session]:
        consistency = ConsistencyLevel.name_to_value[self._settings.consistency]
        profile = ExecutionProfile(
            load_balancing_policy=TokenAwarePolicy(RoundRobinPolicy()),
            consistency_level=consistency,
            serial_consistency_level=ConsistencyLevel.SERIAL,
            request_timeout=self._settings.request_timeout_s,
            row_factory=named_tuple_rows,
        )
        cluster = Cluster(
            contact_points=list(self._settings.hosts),
            port=self._settings.port,
            execution_profiles={EXEC_PROFILE_DEFAULT: profile},
            connect_timeout=5,
            control_connection_timeout=5,
            # The default backs off to 10 minutes: after a node restart the service would
            # stay "NoHostAvailable" long after the node is back.
            reconnection_policy=ExponentialReconnectionPolicy(base_delay=0.2, max_delay=2.0),
            protocol_version=5,
        )
        try:
            session = cluster.connect()
        except Exception:
            cluster.shutdown()
            raise
        return cluster, session

    async def prepare(self, cql: str) -> PreparedStatement:
        return await asyncio.to_thread(self.session.prepare, cql)

    async def execute(
        self,
        statement: str | SimpleStatement | PreparedStatement | Any,
        params: Sequence[object] | None = None,
        timeout_s: float | None = None,
    ) -> list[Row]:
        """Runs one statement without blocking the loop; returns the rows of every page.

        Raises:
            StoreUnavailable: on timeouts and unavailable replicas (the caller may retry
                idempotent statements).
        """
        loop = asyncio.get_running_loop()
        result: asyncio.Future[list[Row]] = loop.create_future()
        response = self.session.execute_async(
            statement, params, timeout=timeout_s or self._settings.request_timeout_s
        )

        collected: list[Row] = []

        def on_success(rows: Any) -> None:
            # Runs on the driver's I/O thread with one page; further pages re-fire it.
            if rows is not None:
                collected.extend(rows)
            if response.has_more_pages:
                response.start_fetching_next_page()
            else:
                loop.call_soon_threadsafe(_resolve, result, collected, None)

        def on_error(exc: BaseException) -> None:
            loop.call_soon_threadsafe(_resolve, result, None, exc)

        response.add_callbacks(on_success, on_error)
        try:
            rows = await result
        except asyncio.CancelledError:
            # The statement may still be in flight: the driver still needs its objects.
            raise
        except Exception as exc:
            _release(response)
            raise StoreUnavailable(f"cassandra: {type(exc).__name__}: {exc}") from exc
        _release(response)
        return rows

    async def close(self) -> None:
        if self._cluster is not None:
            await asyncio.to_thread(self._cluster.shutdown)
            self._cluster = None
            self._session = None


def _release(response: ResponseFuture) -> None:
    """Breaks the reference cycles a finished ResponseFuture keeps, so reference counting
    frees it at once. Left to the cyclic collector, ~60 objects per statement (with the
    driver's row factory) made a counter shard's young collections take 250-600 ms each,
    every ~15 s, in `make soak` (docs/benchmarks.md, session 15)."""
    # Our callbacks close over `response`, and it holds them.
    response.clear_callbacks()
    # Its timeout timer, cancelled once the result is in, calls the response's own bound
    # method (cassandra-driver 3.30 keeps it in a private attribute, hence the guard).
    if getattr(response, "_timer", None) is not None:
        response._timer = None


def _resolve(
    future: asyncio.Future[list[Row]], rows: list[Row] | None, exc: BaseException | None
) -> None:
    if future.done():
        return
    if exc is not None:
        future.set_exception(exc)
    else:
        future.set_result(rows or [])
