"""Wiring of the origin process: catalog, media store, upload intake, transcode pool, media
reader, and their background loops (transcode workers, re-queue of unfinished sources,
expiry of abandoned uploads)."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Sequence
from pathlib import Path

from grpc import aio

from origin.config import OriginConfig
from origin.console_auth import load_moderators
from origin.console_http import ConsoleServer, ModeratorConsole
from origin.grpc_api import OriginServicer
from origin.media_reader import MediaReader
from origin.media_store import MediaStore
from origin.moderation_hook import ModerationHook, PublishEverything
from origin.reel_catalog import ReelCatalog
from origin.remote_moderation import RemoteModeration
from origin.review_client import ReviewClient
from origin.transcode_pool import TranscodePool
from origin.upload_intake import UploadIntake
from protos import origin_pb2, origin_pb2_grpc
from reelstream.background import BackgroundLoops
from reelstream.cassandra_client import CassandraClient, CassandraSettings
from reelstream.schema import apply_schema

logger = logging.getLogger(__name__)

UPLOAD_EXPIRY_INTERVAL_S = 3600.0
CONSOLE_SHUTDOWN_TIMEOUT_S = 5.0


class OriginService:
    def __init__(self, config: OriginConfig, moderation: ModerationHook | None = None) -> None:
        self._config = config
        self._client = CassandraClient(CassandraSettings.of(config))
        self._catalog = ReelCatalog(self._client)
        self._store = MediaStore(config.media_root())
        self._remote_moderation: RemoteModeration | None = None
        if moderation is None and config.moderation_address:
            moderation = self._remote_moderation = RemoteModeration(
                config.moderation_address, config.moderation_timeout_s
            )
        self._pool = TranscodePool(
            config, self._store, self._catalog, moderation or PublishEverything()
        )
        self._uploads = UploadIntake(config, self._store, self._catalog, self._pool)
        self._media = MediaReader(self._catalog, self._store, config.segment_chunk_bytes)
        self._loops = BackgroundLoops()
        self._reviews: ReviewClient | None = None
        self._console: ConsoleServer | None = None

    async def start(self) -> None:
        await self._client.connect()
        await apply_schema(self._client)
        await self._catalog.prepare()
        await asyncio.to_thread(self._store.prepare)
        logger.info("media root", extra={"fields": {"path": str(self._store.root)}})
        self._loops.start(self._pool.run(), "transcode-pool")
        self._loops.start(self._pool.recover(), "transcode-recovery")
        self._loops.start(self._expire_uploads(), "upload-expiry")
        if self._config.console_moderators_file:
            await self._start_console()

    async def _start_console(self) -> None:
        config = self._config
        moderators = await asyncio.to_thread(load_moderators, Path(config.console_moderators_file))
        self._reviews = ReviewClient(config.moderation_address, config.console_rpc_timeout_s)
        console = ModeratorConsole(
            moderators,
            self._reviews,
            self._catalog,
            self._store,
            session_ttl_s=config.console_session_ttl_s,
            max_sessions=config.console_max_sessions,
            secure_cookies=config.console_secure_cookies,
        )
        self._console = ConsoleServer(
            console.app(), config.console_address, CONSOLE_SHUTDOWN_TIMEOUT_S
        )
        await self._console.start()

    def register(self, server: aio.Server) -> Sequence[str]:
        origin_pb2_grpc.add_OriginServiceServicer_to_server(
            OriginServicer(self._catalog, self._uploads, self._media), server
        )
        return [origin_pb2.DESCRIPTOR.services_by_name["OriginService"].full_name]

    async def _expire_uploads(self) -> None:
        while True:
            expired = await asyncio.to_thread(self._store.expire_uploads, self._config.upload_ttl_s)
            if expired:
                logger.info("expired staged uploads", extra={"fields": {"count": len(expired)}})
            await asyncio.sleep(UPLOAD_EXPIRY_INTERVAL_S)

    async def drain(self, timeout_s: float) -> None:
        # A running transcode is stopped (its ffmpeg gets SIGTERM, its work folder is
        # deleted); its source stays queued on disk for the next start.
        if self._console is not None:
            await self._console.stop()
        await self._loops.cancel_all()

    async def close(self) -> None:
        if self._console is not None:
            await self._console.stop()
        await self._loops.cancel_all()
        if self._reviews is not None:
            await self._reviews.close()
        if self._remote_moderation is not None:
            await self._remote_moderation.close()
        await self._client.close()
