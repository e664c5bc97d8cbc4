"""Reel metadata in Cassandra (tables `reels` and `uploads`).

Every write is a plain idempotent upsert of the columns it owns, so a retry after a timeout
is safe. Renditions are kept as one JSON text column: they are written once, when the
ladder is published, and always read whole.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from dataclasses import dataclass

from cassandra.query import PreparedStatement

from origin import renditions as renditions_json
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


@dataclass(frozen=True)
class UploadRecord:
    upload_id: str
    reel_id: int
    total_bytes: int


@dataclass(frozen=True)
class ServingInfo:
    """What serving a reel's files needs: may it be served, and from which folder."""

    state: origin_pb2.ReelState.ValueType
    media_key: str
    state_reason: str


class ReelCatalog:
    def __init__(self, client: CassandraClient) -> None:
        self._client = client
        self._statements: dict[str, PreparedStatement] = {}

    async def prepare(self) -> None:
        ks = self._client.keyspace
        for name, cql in {
            "read": f"SELECT reel_id, creator_id, caption, hashtags, state, progress_percent,"
            f" duration_ms, content_hash, created_ms, renditions, age_restricted FROM {ks}.reels"
            f" WHERE reel_id = ?",
            "brief": f"SELECT reel_id, state, duration_ms, age_restricted FROM {ks}.reels"
            f" WHERE reel_id = ?",
            "serving": f"SELECT state, media_key, state_reason FROM {ks}.reels WHERE reel_id = ?",
            "write": f"INSERT INTO {ks}.reels (reel_id, creator_id, caption, hashtags, state,"
            f" progress_percent, duration_ms, content_hash, created_ms)"
            f" VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
            "state": f"UPDATE {ks}.reels SET state = ?, state_reason = ? WHERE reel_id = ?",
            "age_restricted": f"UPDATE {ks}.reels SET age_restricted = ? WHERE reel_id = ?",
            "progress": f"UPDATE {ks}.reels SET progress_percent = ? WHERE reel_id = ?",
            "accepted": f"UPDATE {ks}.reels SET state = ?, progress_percent = 0,"
            f" duration_ms = ?, content_hash = ? WHERE reel_id = ?",
            "media": f"UPDATE {ks}.reels SET media_key = ?, renditions = ?,"
            f" progress_percent = 100 WHERE reel_id = ?",
            "upload_write": f"INSERT INTO {ks}.uploads (upload_id, reel_id, total_bytes,"
            f" created_ms) VALUES (?, ?, ?, ?)",
            "upload_read": f"SELECT upload_id, reel_id, total_bytes FROM {ks}.uploads"
            f" WHERE upload_id = ?",
            "upload_delete": f"DELETE FROM {ks}.uploads WHERE upload_id = ?",
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
            renditions=renditions_json.from_json(row.renditions),
            age_restricted=bool(row.age_restricted),
        )

    async def serving_info(self, reel_id: int) -> ServingInfo | None:
        rows = await self._client.execute(self._statements["serving"], (reel_id,))
        if not rows:
            return None
        row = rows[0]
        return ServingInfo(_state_value(row.state), row.media_key or "", row.state_reason or "")

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
                age_restricted=bool(row.age_restricted),
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

    async def create_upload(self, reel: origin_pb2.Reel, upload: UploadRecord) -> None:
        """Registers a new upload and its reel (state UPLOADING)."""
        await self.put_many([reel])
        await self._client.execute(
            self._statements["upload_write"],
            (upload.upload_id, upload.reel_id, upload.total_bytes, reel.created_ms),
        )

    async def find_upload(self, upload_id: str) -> UploadRecord | None:
        rows = await self._client.execute(self._statements["upload_read"], (upload_id,))
        if not rows:
            return None
        return UploadRecord(rows[0].upload_id, rows[0].reel_id, rows[0].total_bytes)

    async def forget_upload(self, upload_id: str) -> None:
        await self._client.execute(self._statements["upload_delete"], (upload_id,))

    async def set_state(
        self, reel_id: int, state: origin_pb2.ReelState.ValueType, reason: str = ""
    ) -> None:
        await self._client.execute(self._statements["state"], (_state_name(state), reason, reel_id))

    async def set_age_restricted(self, reel_id: int, restricted: bool) -> None:
        await self._client.execute(self._statements["age_restricted"], (restricted, reel_id))

    async def set_progress(self, reel_id: int, percent: int) -> None:
        await self._client.execute(self._statements["progress"], (percent, reel_id))

    async def mark_accepted(self, reel_id: int, duration_ms: int, content_hash: str) -> None:
        """The upload passed the probe: PROCESSING, with what the probe found."""
        await self._client.execute(
            self._statements["accepted"],
            (_state_name(origin_pb2.REEL_STATE_PROCESSING), duration_ms, content_hash, reel_id),
        )

    async def set_media(
        self, reel_id: int, media_key: str, renditions: Sequence[origin_pb2.Rendition]
    ) -> None:
        await self._client.execute(
            self._statements["media"], (media_key, renditions_json.to_json(renditions), reel_id)
        )
