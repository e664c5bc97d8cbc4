"""Wiring of the spam service: model, counter channels, origin client, judge loop."""

from __future__ import annotations

import asyncio
import logging
import os
import socket
import time
from collections.abc import Sequence
from pathlib import Path

from grpc import aio

from protos import spam_pb2, spam_pb2_grpc
from reelstream.background import BackgroundLoops
from reelstream.cassandra_client import CassandraClient, CassandraSettings
from reelstream.channels import ORIGIN_POLICY
from reelstream.member_pool import MemberPool
from reelstream.schema import apply_schema
from reelstream.service_registry import ServiceRegistry
from reelstream.shard_directory import ShardDirectory
from spam.config import SpamConfig
from spam.grpc_api import SpamServicer
from spam.model import SpamModel
from spam.reel_durations import ReelDurations
from spam.spam_filter import SpamFilter
from spam.verdict_store import VerdictStore

logger = logging.getLogger(__name__)


class SpamService:
    def __init__(self, config: SpamConfig) -> None:
        self._config = config
        self._loops = BackgroundLoops()
        self._shards: ShardDirectory | None = None
        self._client = CassandraClient(CassandraSettings.of(config))
        self._durations: ReelDurations | None = None
        self.filter: SpamFilter | None = None

    async def start(self) -> None:
        model = await asyncio.to_thread(SpamModel.load, Path(self._config.model_path))
        await self._client.connect()
        await apply_schema(self._client)
        store = VerdictStore(self._client)
        await store.prepare()
        self._shards = ShardDirectory(
            self._config.counter_addresses, self._config.shard_count, rpc_timeout_s=2.0
        )
        self._loops.start(self._shards.run(), "shard-map")
        shards = self._shards
        origins = None
        if self._config.origin_address:
            # Origin replicas from the registry; the configured address is the seed.
            registry = ServiceRegistry(self._client)
            await registry.prepare()
            origins = MemberPool(
                "origin",
                ORIGIN_POLICY,
                registry,
                [self._config.origin_address],
                self._config.discovery_refresh_s,
            )
            self._loops.start(origins.run(), "origin-members")
        self._durations = ReelDurations(origins, 1_000_000, self._config.rpc_timeout_s)
        # Verdict ids must never repeat across restarts: the correction ids derive from them.
        instance = f"{socket.gethostname()}-{os.getpid()}-{int(time.time() * 1000)}"
        self.filter = SpamFilter(self._config, model, shards, self._durations, instance, store)
        restored = await self.filter.restore()
        logger.info("verdicts restored", extra={"fields": {"verdicts": restored}})
        self._loops.start(self.filter.run_judge(), "judge")

    def register(self, server: aio.Server) -> Sequence[str]:
        if self.filter is None:
            raise RuntimeError("register() is called after start()")
        spam_pb2_grpc.add_SpamServiceServicer_to_server(SpamServicer(self.filter), server)
        return [spam_pb2.DESCRIPTOR.services_by_name["SpamService"].full_name]

    async def drain(self, timeout_s: float) -> None:
        """Judges what is buffered one last time (its corrections are applied)."""
        if self.filter is not None:
            await self.filter.judge_once()

    async def close(self) -> None:
        await self._loops.cancel_all()
        if self._durations is not None:
            await self._durations.close()
        if self._shards is not None:
            await self._shards.close()
        await self._client.close()
