"""The service registry: one heartbeat row per live process of every tier, in Cassandra.

Table `service_members`, partitioned by service kind (edge, origin, counter, spam,
moderation), so "every live origin" is one single-partition read. A row names the member,
its gRPC address (what callers dial), its HTTP and metrics addresses, its state (`serving`,
or `leaving` from the moment it is told to stop) and, for counters, the lease owner id that
maps a shard lease to an address. Rows are written with a Cassandra TTL as well as an
`expires_ms`: a crashed process's row disappears by itself, and readers ignore an expired
row even before Cassandra drops it.

Counter processes heartbeat through this table from their shard host (their assignment
depends on the same rows); every other tier through `reelstream/registration.py`.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

from cassandra.query import PreparedStatement

from reelstream.cassandra_client import CassandraClient, StoreUnavailable

SERVING, LEAVING = "serving", "leaving"
KINDS = ("edge", "origin", "counter", "spam", "moderation")


def now_ms() -> int:
    return int(time.time() * 1000)


@dataclass(frozen=True)
class ServiceMember:
    """One process as its last heartbeat described it."""

    kind: str
    member: str
    grpc_address: str
    http_address: str = ""
    metrics_address: str = ""
    state: str = SERVING
    owner: str = ""
    """Counter processes: the owner id written in the shard leases they hold."""
    expires_ms: int = 0

    @property
    def leaving(self) -> bool:
        return self.state == LEAVING


class ServiceRegistry:
    """CQL of `service_members` (the table is created by reelstream/schema.py)."""

    def __init__(self, client: CassandraClient) -> None:
        self._client = client
        self._prepared: dict[str, PreparedStatement] = {}

    async def prepare(self) -> None:
        ks = self._client.keyspace
        columns = "kind, member, grpc_address, http_address, metrics_address, state, owner"
        statements = {
            "heartbeat": f"INSERT INTO {ks}.service_members ({columns}, expires_ms)"
            " VALUES (?, ?, ?, ?, ?, ?, ?, ?) USING TTL ?",
            "kind": f"SELECT {columns}, expires_ms FROM {ks}.service_members WHERE kind = ?",
            "all": f"SELECT {columns}, expires_ms FROM {ks}.service_members",
            "remove": f"DELETE FROM {ks}.service_members WHERE kind = ? AND member = ?"
            " IF owner = ?",
        }
        for name, cql in statements.items():
            prepared = await self._client.prepare(cql)
            prepared.is_idempotent = " IF " not in cql
            self._prepared[name] = prepared

    def _statement(self, name: str) -> PreparedStatement:
        statement = self._prepared.get(name)
        if statement is None:
            raise StoreUnavailable("the service registry is not connected yet")
        return statement

    async def heartbeat(self, member: ServiceMember, ttl_ms: int) -> None:
        """Writes `member`'s row, live for `ttl_ms` from now."""
        ttl_s = max(1, -(-ttl_ms // 1000))
        await self._client.execute(
            self._statement("heartbeat"),
            (
                member.kind,
                member.member,
                member.grpc_address,
                member.http_address,
                member.metrics_address,
                member.state,
                member.owner,
                now_ms() + ttl_ms,
                ttl_s,
            ),
        )

    async def members(self, kind: str) -> list[ServiceMember]:
        """The live members of `kind` (serving and leaving), by name.

        Raises:
            StoreUnavailable: Cassandra did not answer, or the registry is not connected.
        """
        return _live(await self._client.execute(self._statement("kind"), (kind,)))

    async def all_members(self) -> list[ServiceMember]:
        """Every live member of every kind, by kind then name (for `make status`)."""
        return _live(await self._client.execute(self._statement("all")))

    async def remove(self, kind: str, member: str, owner: str) -> None:
        """Deletes the row unless a newer process of the same name wrote it since (nothing
        to delete when the process stopped before it could register)."""
        statement = self._prepared.get("remove")
        if statement is not None:
            await self._client.execute(statement, (kind, member, owner))


def _live(rows: object) -> list[ServiceMember]:
    now = now_ms()
    members = [
        ServiceMember(
            kind=row.kind,
            member=row.member,
            grpc_address=row.grpc_address or "",
            http_address=row.http_address or "",
            metrics_address=row.metrics_address or "",
            state=row.state or SERVING,
            owner=row.owner or "",
            expires_ms=expires,
        )
        for row in rows  # type: ignore[attr-defined]
        if (expires := row.expires_ms or 0) > now
    ]
    return sorted(members, key=lambda m: (m.kind, m.member))
