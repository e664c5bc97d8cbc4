"""Counts as this edge serves them: live values pushed by the counter shards, plus this
edge's own events that a value does not include yet (read-your-writes).

The edge follows, on one FollowCounts stream per shard, the reels its callers read: a read
that misses the cache is answered by the shard directly and asks the stream to follow those
reels; the shard then pushes their current values and every later change. So the cache only
ever holds values that a live stream keeps current, and push traffic grows with what this
edge's viewers read, not with everything that changes. Every value carries the shard's
version (out-of-order values are dropped) and the highest sequence of this edge's batches
it includes, so adding the unacknowledged events never counts one twice. When a stream
breaks, that shard's values are dropped and reads go to the shard until it is back. The
cache is bounded: the least recently pushed values are evicted and unfollowed.

A read that reaches a shard while it moves between counter processes (no owner in the map,
or the old owner refuses or is gone: UNAVAILABLE) waits for the map to change and asks
again, for up to `shard_move_wait_s`: a handoff takes a fraction of a second, and a caller
should see a slower answer rather than an error.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import time
from collections import OrderedDict, defaultdict
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from typing import TypeVar

import grpc
import numpy as np
from grpc import aio
from prometheus_client import Counter, Gauge

from edge.errors import ShardUnavailable
from edge.journal import EdgeJournal
from protos import common_pb2, counter_pb2, counter_pb2_grpc
from reelstream.count_feed import CountFeed
from reelstream.ring import ConsistentHashRing
from reelstream.shard_directory import NoShardOwner, ShardDirectory

logger = logging.getLogger(__name__)

CACHE_HITS = Counter("edge_count_cache_hits_total", "Count reads answered from the cache")
CACHE_MISSES = Counter("edge_count_cache_misses_total", "Count reads sent to a shard")
CACHE_ENTRIES = Gauge("edge_count_cache_entries", "Reels with cached counts")
PUSH_LAG_MS = Gauge("edge_count_push_lag_ms", "Shard clock to arrival of the last push")
SHARD_READ_RETRIES = Counter(
    "edge_shard_read_retries_total", "Count and like reads asked again after a shard moved"
)
# Between two tries of a read whose shard moves (sooner if the shard map changes).
MOVE_RETRY_GAP_S = 0.2
STALE_READS = Counter(
    "edge_count_stale_reads_total",
    "Reels answered from the values of a broken count stream while its shard did not answer",
)

ReplyT = TypeVar("ReplyT")


@dataclass(slots=True)
class CachedCounts:
    views: int
    likes: int
    views_removed: int
    likes_removed: int
    unique_viewers: int
    edge_seq: int
    version: int


class CountCache:
    def __init__(
        self,
        journal: EdgeJournal,
        clients: ShardDirectory,
        ring: ConsistentHashRing,
        max_entries: int,
        rpc_timeout_s: float,
        shard_move_wait_s: float = 3.0,
    ) -> None:
        self._journal = journal
        self._clients = clients
        self._ring = ring
        self._max_entries = max_entries
        self._timeout_s = rpc_timeout_s
        self._move_wait_s = shard_move_wait_s
        self._entries: OrderedDict[int, CachedCounts] = OrderedDict()
        # Values of a shard whose count stream broke (its shard moving or its process gone):
        # not current any more, so reads ask the shard; only when it does not answer are
        # they served from here (last known value plus this edge's own events) rather than
        # failing. Replaced shard by shard when the stream is back.
        self._stale: list[dict[int, CachedCounts]] = [{} for _ in range(clients.shard_count)]
        shards = clients.shard_count
        self._followed: list[set[int]] = [set() for _ in range(shards)]
        self._requests: list[asyncio.Queue[counter_pb2.FollowCountsRequest | None] | None] = [
            None
        ] * shards
        self.feed = CountFeed()

    def _store(self, reel: common_pb2.ReelCounts, edge_seq: int, version: int) -> bool:
        existing = self._entries.get(reel.reel_id)
        if existing is not None and existing.version > version:
            return False
        self._entries[reel.reel_id] = _cached(reel, edge_seq, version)
        self._entries.move_to_end(reel.reel_id)
        while len(self._entries) > self._max_entries:
            evicted, _ = self._entries.popitem(last=False)
            self._send(self._ring.shard_for(evicted), unfollow=[evicted])
        return True

    def _send(
        self, shard: int, follow: list[int] | None = None, unfollow: list[int] | None = None
    ) -> None:
        """Queues a follow change for the shard's stream (dropped if the stream is down or
        backed up: a later miss asks again)."""
        queue = self._requests[shard]
        if queue is None:
            return
        try:
            queue.put_nowait(
                counter_pb2.FollowCountsRequest(
                    follow_reel_ids=follow or [], unfollow_reel_ids=unfollow or []
                )
            )
        except asyncio.QueueFull:
            return
        self._followed[shard].update(follow or [])
        self._followed[shard].difference_update(unfollow or [])

    def _drop_shard(self, shard: int) -> None:
        # One vectorised ring lookup: the cache may hold millions of reels and this runs on
        # the event loop.
        cached = np.fromiter(self._entries, dtype=np.uint64, count=len(self._entries))
        stale = self._stale[shard]
        for reel_id in cached[self._ring.shards_for(cached) == shard].tolist():
            stale[reel_id] = self._entries.pop(reel_id)
        self._followed[shard] = set()
        CACHE_ENTRIES.set(len(self._entries))

    async def run_subscription(self, shard: int) -> None:
        """Follows reels of one shard for the life of the edge, reconnecting on errors."""
        backoff_s = 0.1
        while True:
            # None ends the request stream (see the finally below).
            queue: asyncio.Queue[counter_pb2.FollowCountsRequest | None] = asyncio.Queue(1024)
            self._requests[shard] = queue

            async def requests(
                queue: asyncio.Queue[counter_pb2.FollowCountsRequest | None] = queue,
            ) -> AsyncIterator[counter_pb2.FollowCountsRequest]:
                yield counter_pb2.FollowCountsRequest(edge_id=self._journal.edge_id, shard=shard)
                while (request := await queue.get()) is not None:
                    yield request

            call = None
            try:
                # No deadline: a subscription for the edge's lifetime. Channel keepalive
                # (reelstream/channels.py) breaks it when the shard stops answering.
                call = self._clients.stub(shard).FollowCounts(requests())
                async for update in call:
                    backoff_s = 0.1
                    if self._stale[shard]:
                        self._stale[shard] = {}
                    self._apply(update)
                    self._journal.note_included(shard, update.edge_applied_seq)
            except (aio.AioRpcError, NoShardOwner) as exc:
                # A moved shard ends its streams: follow it at its new owner.
                self._clients.mark_stale()
                code = exc.code().name if isinstance(exc, aio.AioRpcError) else "NO_OWNER"
                logger.warning(
                    "count stream broken, reconnecting",
                    extra={"fields": {"shard": shard, "code": code, "retry_in_s": backoff_s}},
                )
            finally:
                # grpc's task consuming `requests()` outlives a failed call, waiting on
                # queue.get() until garbage-collected while pending (found by the Toxiproxy
                # reset test: one such task per broken stream); the sentinel ends it.
                if call is not None:
                    call.cancel()
                with contextlib.suppress(asyncio.QueueFull):
                    queue.put_nowait(None)
            self._requests[shard] = None
            self._drop_shard(shard)
            await asyncio.sleep(backoff_s * (0.5 + random.random()))
            backoff_s = min(backoff_s * 2, 2.0)

    def _apply(self, update: common_pb2.CountUpdate) -> None:
        changed = {
            reel.reel_id
            for reel in update.counts
            if self._store(reel, update.edge_applied_seq, update.version)
        }
        if update.as_of_ms:
            PUSH_LAG_MS.set(max(0, int(time.time() * 1000) - update.as_of_ms))
        CACHE_ENTRIES.set(len(self._entries))
        if changed:
            self.feed.publish(changed)

    async def _ask_shard(
        self,
        shard: int,
        call: Callable[[counter_pb2_grpc.CounterServiceAsyncStub], Awaitable[ReplyT]],
    ) -> ReplyT:
        """`call` on the process serving `shard`, asked again while the shard moves.

        Raises:
            ShardUnavailable: no answer within `shard_move_wait_s`, or a failure other
                than UNAVAILABLE.
        """
        loop = asyncio.get_running_loop()
        give_up_at = loop.time() + self._move_wait_s
        while True:
            try:
                return await call(self._clients.stub(shard))
            except NoShardOwner as exc:
                problem = str(exc)
            except aio.AioRpcError as exc:
                self._clients.mark_stale()
                problem = f"shard {shard}: {exc.code().name}: {exc.details()}"
                if exc.code() != grpc.StatusCode.UNAVAILABLE:
                    raise ShardUnavailable(problem) from exc
            remaining = give_up_at - loop.time()
            if remaining <= 0:
                raise ShardUnavailable(problem)
            SHARD_READ_RETRIES.inc()
            await self._clients.wait_changed(min(remaining, MOVE_RETRY_GAP_S))

    async def _read_shard(self, shard: int, reel_ids: list[int]) -> dict[int, CachedCounts]:
        """Asks the shard directly and starts following these reels."""
        self._send(shard, follow=[r for r in reel_ids if r not in self._followed[shard]])
        request = common_pb2.GetCountsRequest(reel_ids=reel_ids, edge_id=self._journal.edge_id)
        response = await self._ask_shard(
            shard, lambda stub: stub.GetCounts(request, timeout=self._timeout_s)
        )
        # Not cached: only the stream's values are kept current.
        return {
            reel.reel_id: _cached(reel, response.edge_applied_seq, response.version)
            for reel in response.counts
        }

    async def counts(self, reel_ids: list[int]) -> list[common_pb2.ReelCounts]:
        """Counts in the order of `reel_ids`, this edge's own events included.

        Raises:
            ShardUnavailable: a shard needed for a value not in the cache did not answer.
        """
        found: dict[int, CachedCounts] = {}
        missing: dict[int, list[int]] = defaultdict(list)
        for reel_id in dict.fromkeys(reel_ids):
            entry = self._entries.get(reel_id)
            if entry is None:
                missing[self._ring.shard_for(reel_id)].append(reel_id)
            else:
                found[reel_id] = entry
        CACHE_HITS.inc(len(found))
        if missing:
            CACHE_MISSES.inc(sum(len(ids) for ids in missing.values()))
            for fetched in await asyncio.gather(
                *(self._read_shard_or_stale(shard, ids) for shard, ids in missing.items())
            ):
                found.update(fetched)
        return [self._with_own_events(reel_id, found[reel_id]) for reel_id in reel_ids]

    async def _read_shard_or_stale(
        self, shard: int, reel_ids: list[int]
    ) -> dict[int, CachedCounts]:
        try:
            return await self._read_shard(shard, reel_ids)
        except ShardUnavailable:
            stale = self._stale[shard]
            if not all(reel_id in stale for reel_id in reel_ids):
                raise
            STALE_READS.inc(len(reel_ids))
            return {reel_id: stale[reel_id] for reel_id in reel_ids}

    def _with_own_events(self, reel_id: int, entry: CachedCounts) -> common_pb2.ReelCounts:
        shard = self._ring.shard_for(reel_id)
        own = self._journal.unacknowledged_views(shard, reel_id, entry.edge_seq)
        return common_pb2.ReelCounts(
            reel_id=reel_id,
            views=entry.views + own,
            likes=entry.likes,
            views_removed=entry.views_removed,
            likes_removed=entry.likes_removed,
            unique_viewers=entry.unique_viewers,
        )

    async def _like_state(
        self, shard: int, user_id: int, reel_ids: list[int]
    ) -> common_pb2.GetLikeStateResponse:
        request = common_pb2.GetLikeStateRequest(user_id=user_id, reel_ids=reel_ids)
        return await self._ask_shard(
            shard, lambda stub: stub.GetLikeState(request, timeout=self._timeout_s)
        )

    async def liked(self, user_id: int, reel_ids: list[int]) -> list[bool]:
        """Whether `user_id` currently likes each reel (asked of the owning shards)."""
        by_shard: dict[int, list[int]] = defaultdict(list)
        for reel_id in dict.fromkeys(reel_ids):
            by_shard[self._ring.shard_for(reel_id)].append(reel_id)
        answers: dict[int, bool] = {}
        for shard, ids in by_shard.items():
            response = await self._like_state(shard, user_id, ids)
            answers.update(zip(ids, response.liked, strict=True))
        return [answers[reel_id] for reel_id in reel_ids]


def _cached(reel: common_pb2.ReelCounts, edge_seq: int, version: int) -> CachedCounts:
    return CachedCounts(
        reel.views,
        reel.likes,
        reel.views_removed,
        reel.likes_removed,
        reel.unique_viewers,
        edge_seq,
        version,
    )
