"""Reel metadata in Cassandra (table `reels`)."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence

from cassandra.query import PreparedStatement

from protos import origin_pb2
from reelstream.cassandra_client import CassandraClient, Row

MAX_PARALLEL_READS = 64


def _state_value(name: str | None) -> origin_pb2.ReelState.ValueType:
    full = f"REEL_STATE_{(name or 'UNSPECIFIED').upper()}"
    try:
        return origin_pb2.ReelState.Value(full)
    except ValueError:
        return origin_pb2.REEL_STATE_UNSPECIFIED


def _state_name(value: origin_pb2.ReelState.ValueType) -> str:
    return origin_pb2.ReelState.Name(value).removeprefix("REEL_STATE_").lower()


class ReelCatalog:
    def __init__(self, client: CassandraClient) -> None:
        self._client = client
        self._statements: dict[str, PreparedStatement] = {}

    async def prepare(self) -> None:
        ks = self._client.keyspace
        for name, cql in {
            "read": f"SELECT reel_id, creator_id, caption, hashtags, state, progress_percent,"
            f" duration_ms, content_hash, created_ms FROM {ks}.reels WHERE reel_id = ?",
            "brief": f"SELECT reel_id, state, duration_ms FROM {ks}.reels WHERE reel_id = ?",
            "write": f"INSERT INTO {ks}.reels (reel_id, creator_id, caption, hashtags, state,"
            f" progress_percent, duration_ms, content_hash, created_ms)"
            f" VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
        }.items():
            statement = await self._client.prepare(cql)
            statement.is_idempotent = True
            self._statements[name] = statement

    async def get(self, reel_id: int) -> origin_pb2.Reel | None:
        rows = await self._client.execute(self._statements["read"], (reel_id,))
        if not rows:
            return None
        row = rows[0]
        return origin_pb2.Reel(
            reel_id=row.reel_id,
            creator_id=row.creator_id or 0,
            caption=row.caption or "",
            hashtags=list(row.hashtags or []),
            state=_state_value(row.state),
            progress_percent=row.progress_percent or 0,
            duration_ms=row.duration_ms or 0,
            content_hash=row.content_hash or "",
            created_ms=row.created_ms or 0,
        )

    async def briefs(self, reel_ids: Sequence[int]) -> list[origin_pb2.ReelBrief]:
        """State and duration of the reels that exist (single-partition reads in parallel,
        which spread over the cluster better than one multi-partition IN query)."""
        limit = asyncio.Semaphore(MAX_PARALLEL_READS)

        async def one(reel_id: int) -> list[Row]:
            async with limit:
                return await self._client.execute(self._statements["brief"], (reel_id,))

        found = await asyncio.gather(*(one(r) for r in dict.fromkeys(reel_ids)))
        return [
            origin_pb2.ReelBrief(
                reel_id=row.reel_id,
                state=_state_value(row.state),
                duration_ms=row.duration_ms or 0,
            )
            for rows in found
            for row in rows
        ]

    async def put_many(self, reels: Sequence[origin_pb2.Reel]) -> None:
        limit = asyncio.Semaphore(MAX_PARALLEL_READS)

        async def one(reel: origin_pb2.Reel) -> None:
            async with limit:
                await self._client.execute(
                    self._statements["write"],
                    (
                        reel.reel_id,
                        reel.creator_id,
                        reel.caption,
                        list(reel.hashtags),
                        _state_name(reel.state),
                        reel.progress_percent,
                        reel.duration_ms,
                        reel.content_hash,
                        reel.created_ms,
                    ),
                )

        await asyncio.gather(*(one(reel) for reel in reels))
