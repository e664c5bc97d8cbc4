"""Reach of a reel for review priority: its views velocity from the counter shard that owns
it (minute buckets of GetTimeSeries). Unreachable shards give reach 1 (priority then falls
back to severity x likelihood) rather than failing a claim."""

from __future__ import annotations

import logging
import time
from collections.abc import Sequence

from grpc import aio

from moderation.review_priority import reach_of, views_velocity
from protos import common_pb2
from reelstream.background import BackgroundLoops
from reelstream.ring import ConsistentHashRing
from reelstream.shard_directory import NoShardOwner, ShardDirectory

logger = logging.getLogger(__name__)

VELOCITY_MINUTES = 5


class ReachMeter:
    def __init__(
        self, counter_addresses: Sequence[str], shard_count: int, timeout_s: float
    ) -> None:
        self._shards = ShardDirectory(counter_addresses, shard_count, rpc_timeout_s=timeout_s)
        self._ring = ConsistentHashRing.of_size(shard_count) if counter_addresses else None
        self._timeout_s = timeout_s
        self._loops = BackgroundLoops()

    def start(self) -> None:
        """Starts following the counters' shard map (inside the running loop)."""
        if self._ring is not None:
            self._loops.start(self._shards.run(), "shard-map")

    async def reach(self, reel_id: int) -> float:
        if self._ring is None:
            return 1.0
        now = int(time.time() * 1000)
        try:
            stub = self._shards.stub(self._ring.shard_for(reel_id))
            response = await stub.GetTimeSeries(
                common_pb2.GetTimeSeriesRequest(
                    reel_id=reel_id,
                    width=common_pb2.BUCKET_WIDTH_MINUTE,
                    from_ms=now - VELOCITY_MINUTES * 60_000,
                    to_ms=now,
                ),
                timeout=self._timeout_s,
            )
        except (aio.AioRpcError, NoShardOwner) as exc:
            self._shards.mark_stale()
            code = exc.code().name if isinstance(exc, aio.AioRpcError) else "NO_OWNER"
            logger.warning(
                "views velocity unavailable",
                extra={"fields": {"reel": reel_id, "code": code}},
            )
            return 1.0
        views = [bucket.views for bucket in response.buckets]
        return reach_of(views_velocity(views, VELOCITY_MINUTES))

    async def close(self) -> None:
        await self._loops.cancel_all()
        await self._shards.close()
