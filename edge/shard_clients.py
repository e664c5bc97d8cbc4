"""gRPC channels from an edge to the counter shards, opened once inside the running loop."""

from __future__ import annotations

from grpc import aio

from protos import counter_pb2, counter_pb2_grpc
from reelstream.channels import open_channel

_APPLY_BATCH = "/reelstream.v1.CounterService/ApplyBatch"
SerializedApply = aio.UnaryUnaryMultiCallable[bytes, counter_pb2.ApplyBatchResponse]


class ShardClients:
    """One channel and stub per shard id (entry i of the address list serves shard i)."""

    def __init__(self, addresses: tuple[str, ...]) -> None:
        self._channels = [open_channel(address) for address in addresses]
        self.stubs = [counter_pb2_grpc.CounterServiceStub(ch) for ch in self._channels]
        # ApplyBatch with the request already serialised: outbox batches are kept as the
        # bytes journaled in Redis, and parsing them only to serialise them again cost the
        # edge a full protobuf round trip per batch.
        self.apply_serialized: list[SerializedApply] = [
            ch.unary_unary(
                _APPLY_BATCH,
                request_serializer=None,
                response_deserializer=counter_pb2.ApplyBatchResponse.FromString,
            )
            for ch in self._channels
        ]

    async def close(self) -> None:
        for channel in self._channels:
            await channel.close()
