"""Counter processes as members of the service registry (kind `counter`), and the lease
read behind the shard map.

A member is live while its heartbeat has not expired; a member that is `leaving` still
serves its shards while it hands them off, but the assignment no longer counts it. Rows
carry a Cassandra TTL too, so a crashed process's row disappears by itself. The rows live
in the registry every tier uses (reelstream/service_registry.py): one membership mechanism.
"""

from __future__ import annotations

from dataclasses import dataclass

from cassandra.query import PreparedStatement

from reelstream.cassandra_client import CassandraClient
from reelstream.service_registry import LEAVING, SERVING, ServiceMember, ServiceRegistry, now_ms

KIND = "counter"


@dataclass(frozen=True)
class Member:
    """One counter process as its last heartbeat described it."""

    member: str
    address: str
    owner: str
    leaving: bool
    expires_ms: int


@dataclass(frozen=True)
class LeaseHolder:
    """Who holds a shard's lease (owner id and epoch); expired leases are not listed."""

    shard: int
    owner: str
    epoch: int


class MemberStore:
    """The counter rows of the registry and the lease read used for the shard map."""

    def __init__(self, client: CassandraClient, metrics_address: str = "") -> None:
        self._client = client
        self._registry = ServiceRegistry(client)
        self._metrics_address = metrics_address
        self._prepared: dict[str, PreparedStatement] = {}

    async def prepare(self) -> None:
        await self._registry.prepare()
        ks = self._client.keyspace
        self._prepared["holders"] = await self._client.prepare(
            f"SELECT shard, owner, epoch, lease_expires_ms FROM {ks}.shard_leases"
        )
        self._prepared["holders"].is_idempotent = True

    async def heartbeat(
        self, member: str, address: str, owner: str, leaving: bool, ttl_ms: int
    ) -> None:
        await self._registry.heartbeat(
            ServiceMember(
                kind=KIND,
                member=member,
                grpc_address=address,
                metrics_address=self._metrics_address,
                state=LEAVING if leaving else SERVING,
                owner=owner,
            ),
            ttl_ms,
        )

    async def live_members(self) -> list[Member]:
        return [
            Member(m.member, m.grpc_address, m.owner, m.leaving, m.expires_ms)
            for m in await self._registry.members(KIND)
        ]

    async def remove(self, member: str, owner: str) -> None:
        """Deletes the member's row unless a newer process of the same name wrote it."""
        await self._registry.remove(KIND, member, owner)

    async def lease_holders(self) -> dict[int, LeaseHolder]:
        """Current (unexpired) lease holders of every shard ever leased in this keyspace."""
        rows = await self._client.execute(self._prepared["holders"])
        now = now_ms()
        return {
            row.shard: LeaseHolder(row.shard, row.owner, row.epoch or 0)
            for row in rows
            if row.owner and (row.lease_expires_ms or 0) > now
        }
