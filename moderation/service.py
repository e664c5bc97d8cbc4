"""Wiring of the moderation service: Cassandra (origin catalog + moderation tables), models,
hash banks, edge and counter channels, the analyzer and the review queue."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence

from grpc import aio

from moderation.analysis import Analyzer
from moderation.config import ModerationConfig
from moderation.grpc_api import ModerationServicer
from moderation.hash_banks import HashBanks
from moderation.nudity_screen import NudityScreen
from moderation.policy import Thresholds
from moderation.reach import ReachMeter
from moderation.report_weighting import ReportThresholds
from moderation.review_queue import ReviewQueue
from moderation.schema import apply_moderation_schema
from moderation.store import ModerationStore
from moderation.takedown import ReelStates
from moderation.text_screen import TextScreen
from origin.reel_catalog import ReelCatalog
from protos import moderation_pb2, moderation_pb2_grpc
from reelstream.cassandra_client import CassandraClient, CassandraSettings
from reelstream.schema import apply_schema
from reelstream.service_registry import ServiceRegistry


class ModerationService:
    def __init__(self, config: ModerationConfig) -> None:
        self._config = config
        self._client = CassandraClient(CassandraSettings.of(config))
        self._store = ModerationStore(self._client)
        self._banks = HashBanks(self._store)
        self._states: ReelStates | None = None
        self._reach: ReachMeter | None = None
        self._analyzer: Analyzer | None = None
        self.queue: ReviewQueue | None = None

    async def start(self) -> None:
        config = self._config
        await self._client.connect()
        await apply_schema(self._client)
        await apply_moderation_schema(self._client)
        await self._store.prepare()
        catalog = ReelCatalog(self._client)
        await catalog.prepare()
        await self._banks.load(config.default_banks)
        nudity = await asyncio.to_thread(NudityScreen, config.model_threads)
        self._analyzer = Analyzer(
            nudity,
            TextScreen(config.blocklist, config.watchlist),
            self._banks,
            Thresholds(
                nudity_review=config.nudity_review,
                nudity_remove=config.nudity_remove,
                text_review=config.text_review,
            ),
            config.analysis_workers,
            config.max_pending_analyses,
            config.analysis_timeout_s,
            config.ffmpeg_threads,
        )
        await self._analyzer.warm_up()
        registry = ServiceRegistry(self._client)
        await registry.prepare()
        self._states = ReelStates(
            catalog,
            config.edge_addresses,
            config.rpc_timeout_s,
            config.purge_deadline_s,
            registry,
        )
        self._reach = ReachMeter(config.counter_addresses, config.shard_count, config.rpc_timeout_s)
        self._reach.start()
        self.queue = ReviewQueue(
            self._store,
            self._states,
            self._banks,
            self._reach,
            ReportThresholds(config.report_escalate_weight, config.report_hide_weight),
            config.removed_reels_bank,
        )
        await self.queue.load()

    def register(self, server: aio.Server) -> Sequence[str]:
        if self._analyzer is None or self.queue is None:
            raise RuntimeError("register() is called after start()")
        moderation_pb2_grpc.add_ModerationServiceServicer_to_server(
            ModerationServicer(
                self._analyzer, self.queue, self._banks, self._store, self._config.max_lease_s
            ),
            server,
        )
        return [moderation_pb2.DESCRIPTOR.services_by_name["ModerationService"].full_name]

    async def drain(self, timeout_s: float) -> None:
        """Nothing buffered: every report, claim and decision is written before its answer."""

    async def close(self) -> None:
        if self._analyzer is not None:
            self._analyzer.close()
        if self._reach is not None:
            await self._reach.close()
        if self._states is not None:
            await self._states.close()
        await self._client.close()
