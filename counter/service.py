"""Wiring of a counter process: Cassandra, membership, the shards it hosts, gRPC servicer."""

from __future__ import annotations

import logging
from collections.abc import Sequence

from grpc import aio

from counter.config import CounterConfig
from counter.grpc_api import CounterServicer
from counter.membership import MemberStore
from counter.shard_host import ShardHost
from counter.store import CounterStore
from protos import counter_pb2, counter_pb2_grpc
from reelstream.background import BackgroundLoops
from reelstream.cassandra_client import CassandraClient, CassandraSettings
from reelstream.schema import apply_schema
from reelstream.service_shell import metrics_host

logger = logging.getLogger(__name__)


class CounterService:
    """One counter process, serving the logical shards assigned to it."""

    def __init__(self, config: CounterConfig) -> None:
        self._config = config
        self._client = CassandraClient(CassandraSettings.of(config))
        self._store = CounterStore(self._client, 0)
        metrics = f"{metrics_host()}:{config.metrics_port}" if config.metrics_port else ""
        self.host = ShardHost(config, self._store, MemberStore(self._client, metrics))
        self._loops = BackgroundLoops()

    def register(self, server: aio.Server) -> Sequence[str]:
        counter_pb2_grpc.add_CounterServiceServicer_to_server(
            CounterServicer(self._config, self.host), server
        )
        return [counter_pb2.DESCRIPTOR.services_by_name["CounterService"].full_name]

    async def start(self) -> None:
        await self._client.connect()
        await apply_schema(self._client)
        await self._store.prepare()
        await self._store.check_shard_count(self._config.shard_count)
        await self.host.start()
        self._loops.start(self.host.run_membership(), "membership")

    async def hand_off(self, timeout_s: float) -> None:
        """Hands every shard off (the other members take them) while the server still
        answers: edges get "ask GetShardMap" and find the new owners at once."""
        await self.host.leave()

    async def drain(self, timeout_s: float) -> None:
        """Whatever `hand_off` left (nothing, unless it timed out)."""
        await self.host.leave()

    async def close(self) -> None:
        await self._loops.cancel_all()
        await self.host.close()
        await self._client.close()
