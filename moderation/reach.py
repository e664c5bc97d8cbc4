"""Reach of a reel for review priority: its views velocity from the counter shard that owns
it (minute buckets of GetTimeSeries). Unreachable shards give reach 1 (priority then falls
back to severity x likelihood) rather than failing a claim."""

from __future__ import annotations

import logging
import time
from collections.abc import Sequence

from grpc import aio

from moderation.review_priority import reach_of, views_velocity
from protos import common_pb2, counter_pb2_grpc
from reelstream.channels import open_channel
from reelstream.ring import ConsistentHashRing

logger = logging.getLogger(__name__)

VELOCITY_MINUTES = 5


class ReachMeter:
    def __init__(self, counter_addresses: Sequence[str], timeout_s: float) -> None:
        self._channels = [open_channel(a) for a in counter_addresses]
        self._shards = [counter_pb2_grpc.CounterServiceStub(c) for c in self._channels]
        self._ring = (
            ConsistentHashRing.of_size(len(counter_addresses)) if counter_addresses else None
        )
        self._timeout_s = timeout_s

    async def reach(self, reel_id: int) -> float:
        if self._ring is None:
            return 1.0
        now = int(time.time() * 1000)
        stub = self._shards[self._ring.shard_for(reel_id)]
        try:
            response = await stub.GetTimeSeries(
                common_pb2.GetTimeSeriesRequest(
                    reel_id=reel_id,
                    width=common_pb2.BUCKET_WIDTH_MINUTE,
                    from_ms=now - VELOCITY_MINUTES * 60_000,
                    to_ms=now,
                ),
                timeout=self._timeout_s,
            )
        except aio.AioRpcError as exc:
            logger.warning(
                "views velocity unavailable",
                extra={"fields": {"reel": reel_id, "code": exc.code().name}},
            )
            return 1.0
        views = [bucket.views for bucket in response.buckets]
        return reach_of(views_velocity(views, VELOCITY_MINUTES))

    async def close(self) -> None:
        for channel in reversed(self._channels):
            await channel.close()
