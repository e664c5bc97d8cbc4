"""gRPC channels from an edge to the counter shards, opened once inside the running loop."""

from __future__ import annotations

from grpc import aio

from protos import counter_pb2_grpc
from reelstream.service_shell import channel_options


class ShardClients:
    """One channel and stub per shard id (entry i of the address list serves shard i)."""

    def __init__(self, addresses: tuple[str, ...]) -> None:
        self._channels = [
            aio.insecure_channel(address, options=channel_options()) for address in addresses
        ]
        self.stubs = [counter_pb2_grpc.CounterServiceStub(ch) for ch in self._channels]

    async def close(self) -> None:
        for channel in self._channels:
            await channel.close()
