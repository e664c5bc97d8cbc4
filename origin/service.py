"""Wiring of the origin process."""

from __future__ import annotations

from collections.abc import Sequence

from grpc import aio

from origin.config import OriginConfig
from origin.grpc_api import OriginServicer
from origin.reel_catalog import ReelCatalog
from protos import origin_pb2, origin_pb2_grpc
from reelstream.cassandra_client import CassandraClient, CassandraSettings
from reelstream.schema import apply_schema


class OriginService:
    def __init__(self, config: OriginConfig) -> None:
        self._config = config
        self._client = CassandraClient(CassandraSettings.of(config))
        self._catalog = ReelCatalog(self._client)

    async def start(self) -> None:
        await self._client.connect()
        await apply_schema(self._client)
        await self._catalog.prepare()

    def register(self, server: aio.Server) -> Sequence[str]:
        origin_pb2_grpc.add_OriginServiceServicer_to_server(OriginServicer(self._catalog), server)
        return [origin_pb2.DESCRIPTOR.services_by_name["OriginService"].full_name]

    async def drain(self, timeout_s: float) -> None:
        return None

    async def close(self) -> None:
        await self._client.close()
