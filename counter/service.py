"""Wiring of a counter shard process: Cassandra, lease, background loops, gRPC servicer."""

from __future__ import annotations

import logging
import os
import signal
from collections.abc import Sequence

from grpc import aio

from counter.config import CounterConfig
from counter.grpc_api import CounterServicer
from counter.shard_owner import CounterShard
from counter.store import CounterStore
from protos import counter_pb2, counter_pb2_grpc
from reelstream.background import BackgroundLoops
from reelstream.cassandra_client import CassandraClient, CassandraSettings
from reelstream.schema import apply_schema

logger = logging.getLogger(__name__)


class CounterService:
    """One counter shard process."""

    def __init__(self, config: CounterConfig) -> None:
        self._config = config
        self._client = CassandraClient(CassandraSettings.of(config))
        self._store = CounterStore(self._client, config.shard)
        self.shard = CounterShard(config, self._store)
        self._loops = BackgroundLoops()

    def register(self, server: aio.Server) -> Sequence[str]:
        counter_pb2_grpc.add_CounterServiceServicer_to_server(
            CounterServicer(self._config, self.shard), server
        )
        return [counter_pb2.DESCRIPTOR.services_by_name["CounterService"].full_name]

    async def start(self) -> None:
        await self._client.connect()
        await apply_schema(self._client)
        await self._store.prepare()
        await self.shard.acquire()
        self._loops.start(self.shard.run_committer(), "committer")
        self._loops.start(self.shard.run_lease_renewal(), "lease-renewal")
        self._loops.start(self.shard.run_snapshots(), "snapshots")
        self._loops.start(self._exit_when_fenced(), "fencing-watch")

    async def _exit_when_fenced(self) -> None:
        await self.shard.fenced.wait()
        logger.error("fenced by a newer owner: shutting down")
        os.kill(os.getpid(), signal.SIGTERM)

    async def drain(self, timeout_s: float) -> None:
        await self.shard.drain()

    async def close(self) -> None:
        await self._loops.cancel_all()
        await self.shard.release()
        await self._client.close()
