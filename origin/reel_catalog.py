"""Reel metadata in Cassandra (table `reels`)."""

from __future__ import annotations

from cassandra.query import PreparedStatement

from protos import origin_pb2
from reelstream.cassandra_client import CassandraClient


class ReelCatalog:
    def __init__(self, client: CassandraClient) -> None:
        self._client = client
        self._read: PreparedStatement | None = None

    async def prepare(self) -> None:
        self._read = await self._client.prepare(
            f"SELECT reel_id, creator_id, caption, hashtags, state, progress_percent,"
            f" duration_ms, content_hash, created_ms FROM {self._client.keyspace}.reels"
            f" WHERE reel_id = ?"
        )

    async def get(self, reel_id: int) -> origin_pb2.Reel | None:
        assert self._read is not None, "prepare() first"
        rows = await self._client.execute(self._read, (reel_id,))
        if not rows:
            return None
        row = rows[0]
        state_name = f"REEL_STATE_{(row.state or 'UNSPECIFIED').upper()}"
        return origin_pb2.Reel(
            reel_id=row.reel_id,
            creator_id=row.creator_id or 0,
            caption=row.caption or "",
            hashtags=list(row.hashtags or []),
            state=origin_pb2.ReelState.Value(state_name)
            if state_name in origin_pb2.ReelState.keys()  # noqa: SIM118 - EnumTypeWrapper has no __contains__
            else origin_pb2.REEL_STATE_UNSPECIFIED,
            progress_percent=row.progress_percent or 0,
            duration_ms=row.duration_ms or 0,
            content_hash=row.content_hash or "",
            created_ms=row.created_ms or 0,
        )
