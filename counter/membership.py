"""Heartbeat rows of the counter processes in Cassandra (`counter_members`).

A member is live while its heartbeat has not expired; a member that is `leaving` still
serves its shards while it hands them off, but the assignment no longer counts it. Rows
carry a Cassandra TTL too, so a crashed process's row disappears by itself.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

from cassandra.query import PreparedStatement

from reelstream.cassandra_client import CassandraClient


def now_ms() -> int:
    return int(time.time() * 1000)


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
    """CQL of the member table and of the lease read used for the shard map."""

    def __init__(self, client: CassandraClient) -> None:
        self._client = client
        self._prepared: dict[str, PreparedStatement] = {}

    async def prepare(self) -> None:
        ks = self._client.keyspace
        statements = {
            "heartbeat": f"INSERT INTO {ks}.counter_members (member, address, owner, leaving,"
            f" expires_ms) VALUES (?, ?, ?, ?, ?) USING TTL ?",
            "list": f"SELECT member, address, owner, leaving, expires_ms FROM {ks}.counter_members",
            "remove": f"DELETE FROM {ks}.counter_members WHERE member = ? IF owner = ?",
            "holders": f"SELECT shard, owner, epoch, lease_expires_ms FROM {ks}.shard_leases",
        }
        for name, cql in statements.items():
            prepared = await self._client.prepare(cql)
            prepared.is_idempotent = " IF " not in cql
            self._prepared[name] = prepared

    async def heartbeat(
        self, member: str, address: str, owner: str, leaving: bool, ttl_ms: int
    ) -> None:
        ttl_s = max(1, -(-ttl_ms // 1000))
        await self._client.execute(
            self._prepared["heartbeat"],
            (member, address, owner, leaving, now_ms() + ttl_ms, ttl_s),
        )

    async def live_members(self) -> list[Member]:
        rows = await self._client.execute(self._prepared["list"])
        now = now_ms()
        return sorted(
            (
                Member(row.member, row.address or "", row.owner or "", bool(row.leaving), e)
                for row in rows
                if (e := row.expires_ms or 0) > now
            ),
            key=lambda m: m.member,
        )

    async def remove(self, member: str, owner: str) -> None:
        """Deletes the member's row unless a newer process of the same name wrote it
        (nothing to delete when the process stopped before it could join)."""
        statement = self._prepared.get("remove")
        if statement is not None:
            await self._client.execute(statement, (member, owner))

    async def lease_holders(self) -> dict[int, LeaseHolder]:
        """Current (unexpired) lease holders of every shard ever leased in this keyspace."""
        rows = await self._client.execute(self._prepared["holders"])
        now = now_ms()
        return {
            row.shard: LeaseHolder(row.shard, row.owner, row.epoch or 0)
            for row in rows
            if row.owner and (row.lease_expires_ms or 0) > now
        }
