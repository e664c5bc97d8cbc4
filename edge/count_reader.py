"""Counts as seen from this edge: the owning shard's committed values plus this edge's own
events that the shard does not include yet (read-your-writes)."""

from __future__ import annotations

import asyncio
from collections import defaultdict

from grpc import aio

from edge.errors import ShardUnavailable
from edge.journal import EdgeJournal
from edge.shard_clients import ShardClients
from protos import common_pb2
from reelstream.ring import ConsistentHashRing


class CountReader:
    def __init__(
        self,
        journal: EdgeJournal,
        clients: ShardClients,
        ring: ConsistentHashRing,
        rpc_timeout_s: float,
    ) -> None:
        self._journal = journal
        self._clients = clients
        self._ring = ring
        self._timeout_s = rpc_timeout_s

    async def counts(self, reel_ids: list[int]) -> list[common_pb2.ReelCounts]:
        """Counts in the order of `reel_ids`.

        Raises:
            ShardUnavailable: an owning shard did not answer.
        """
        by_shard: dict[int, list[int]] = defaultdict(list)
        for reel_id in dict.fromkeys(reel_ids):
            by_shard[self._ring.shard_for(reel_id)].append(reel_id)
        answers = await asyncio.gather(
            *(self._read_shard(shard, ids) for shard, ids in by_shard.items())
        )
        merged: dict[int, common_pb2.ReelCounts] = {}
        for answer in answers:
            for counts in answer:
                merged[counts.reel_id] = counts
        return [merged[reel_id] for reel_id in reel_ids]

    async def _read_shard(self, shard: int, reel_ids: list[int]) -> list[common_pb2.ReelCounts]:
        try:
            response = await self._clients.stubs[shard].GetCounts(
                common_pb2.GetCountsRequest(reel_ids=reel_ids), timeout=self._timeout_s
            )
        except aio.AioRpcError as exc:
            raise ShardUnavailable(f"shard {shard}: {exc.code().name}: {exc.details()}") from exc
        applied = response.applied_seq.get(self._journal.edge_id, 0)
        result = []
        for counts in response.counts:
            counts.views += self._journal.unacknowledged_views(shard, counts.reel_id, applied)
            result.append(counts)
        return result

    async def liked(self, user_id: int, reel_ids: list[int]) -> list[bool]:
        by_shard: dict[int, list[int]] = defaultdict(list)
        for reel_id in dict.fromkeys(reel_ids):
            by_shard[self._ring.shard_for(reel_id)].append(reel_id)
        answers: dict[int, bool] = {}
        for shard, ids in by_shard.items():
            try:
                response = await self._clients.stubs[shard].GetLikeState(
                    common_pb2.GetLikeStateRequest(user_id=user_id, reel_ids=ids),
                    timeout=self._timeout_s,
                )
            except aio.AioRpcError as exc:
                raise ShardUnavailable(f"shard {shard}: {exc.code().name}") from exc
            answers.update(zip(ids, response.liked, strict=True))
        return [answers[reel_id] for reel_id in reel_ids]
