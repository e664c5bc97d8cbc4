"""gRPC servicer of the edge: the only edge module that maps domain errors to statuses."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator, Callable, Mapping, Sequence
from typing import Any

import grpc
import numpy as np
from grpc import aio

from edge.count_cache import CountCache
from edge.errors import JournalFull, JournalUnavailable, MalformedBatch, ShardUnavailable
from edge.event_intake import EventIntake, single_event_batch
from edge.segment_cache import SegmentCache
from protos import common_pb2, edge_pb2, edge_pb2_grpc
from reelstream.count_feed import TooManySubscribers
from reelstream.request_limits import reel_ids_problem
from reelstream.user_tokens import InvalidToken, TokenClaims, bearer_token, verify

# Servicer methods see requests and responses of several types.
Context = aio.ServicerContext[Any, Any]


class EdgeServicer(edge_pb2_grpc.EdgeServiceServicer):
    def __init__(
        self,
        intake: EventIntake,
        cache: CountCache,
        watch_interval_s: float,
        segment_cache: SegmentCache | None = None,
        forget_reel: Callable[[int], None] | None = None,
        token_keys: Mapping[str, bytes] | None = None,
    ) -> None:
        self._token_keys = token_keys
        self._intake = intake
        self._cache = cache
        self._watch_interval_s = watch_interval_s
        self._segment_cache = segment_cache
        # Drops the reel-directory entry on a purge, so events of a removed reel are refused
        # at once (their counts freeze) instead of after the directory's TTL.
        self._forget_reel = forget_reel

    async def _caller(self, context: Context) -> TokenClaims | None:
        """The verified token of the call when user tokens are required (else None)."""
        if self._token_keys is None:
            return None
        token = bearer_token(context.invocation_metadata())
        if token is None:
            await context.abort(
                grpc.StatusCode.UNAUTHENTICATED, "missing 'authorization: Bearer <token>'"
            )
            raise AssertionError("unreachable")
        try:
            return verify(self._token_keys, token, time.time())
        except InvalidToken as exc:
            await context.abort(grpc.StatusCode.UNAUTHENTICATED, f"invalid token: {exc}")
            raise AssertionError("unreachable") from None

    async def _check_users(self, user_ids: Sequence[int], context: Context) -> None:
        """Refuses a call acting for a user other than its token's."""
        claims = await self._caller(context)
        if claims is None or claims.user_id is None:
            return
        others = np.flatnonzero(np.asarray(user_ids, dtype=np.uint64) != claims.user_id)
        if len(others):
            index = int(others[0])
            await context.abort(
                grpc.StatusCode.PERMISSION_DENIED,
                f"event {index} is for user {user_ids[index]};"
                f" the token is for user {claims.user_id}",
            )

    async def _submit(
        self, batch: common_pb2.EventBatch, context: Context
    ) -> edge_pb2.SendEventsResponse:
        await self._check_users(batch.user_ids, context)
        try:
            return await self._intake.submit(batch, context.time_remaining())
        except MalformedBatch as exc:
            await context.abort(grpc.StatusCode.INVALID_ARGUMENT, str(exc))
        except JournalFull as exc:
            await context.abort(grpc.StatusCode.RESOURCE_EXHAUSTED, f"{exc}; retry with backoff")
        except JournalUnavailable as exc:
            await context.abort(grpc.StatusCode.UNAVAILABLE, str(exc))
        raise AssertionError("unreachable")

    async def SendEvents(
        self, request: common_pb2.EventBatch, context: Context
    ) -> edge_pb2.SendEventsResponse:
        return await self._submit(request, context)

    async def SendEvent(
        self, request: common_pb2.Event, context: Context
    ) -> edge_pb2.SendEventsResponse:
        return await self._submit(single_event_batch(request), context)

    async def StreamEvents(
        self,
        request_iterator: AsyncIterator[common_pb2.EventBatch],
        context: Context,
    ) -> edge_pb2.SendEventsResponse:
        total = edge_pb2.SendEventsResponse()
        offset = 0
        async for batch in request_iterator:
            response = await self._submit(batch, context)
            total.accepted += response.accepted
            for rejection in response.rejections:
                rejection.index += offset
                total.rejections.append(rejection)
            offset += len(batch.reel_ids)
        return total

    async def _check_reel_ids(self, reel_ids: list[int], context: Context) -> None:
        problem = reel_ids_problem(reel_ids)
        if problem:
            await context.abort(grpc.StatusCode.INVALID_ARGUMENT, problem)

    async def GetCounts(
        self, request: common_pb2.GetCountsRequest, context: Context
    ) -> common_pb2.GetCountsResponse:
        reel_ids = list(request.reel_ids)
        await self._check_reel_ids(reel_ids, context)
        try:
            counts = await self._cache.counts(reel_ids)
        except ShardUnavailable as exc:
            await context.abort(grpc.StatusCode.UNAVAILABLE, str(exc))
        return common_pb2.GetCountsResponse(counts=counts)

    async def GetLikeState(
        self, request: common_pb2.GetLikeStateRequest, context: Context
    ) -> common_pb2.GetLikeStateResponse:
        reel_ids = list(request.reel_ids)
        await self._check_reel_ids(reel_ids, context)
        await self._check_users([request.user_id], context)
        try:
            liked = await self._cache.liked(request.user_id, reel_ids)
        except ShardUnavailable as exc:
            await context.abort(grpc.StatusCode.UNAVAILABLE, str(exc))
        return common_pb2.GetLikeStateResponse(liked=liked)

    async def WatchCounts(
        self, request: common_pb2.WatchCountsRequest, context: Context
    ) -> AsyncIterator[common_pb2.CountUpdate]:
        reel_ids = list(dict.fromkeys(request.reel_ids))
        await self._check_reel_ids(reel_ids, context)
        try:
            async with self._cache.feed.subscribe(reel_ids) as subscription:
                # First the current counts of every watched reel, then only changes.
                yield common_pb2.CountUpdate(
                    counts=await self._cache.counts(reel_ids), as_of_ms=_now_ms()
                )
                while True:
                    changed = await subscription.next_changes(self._watch_interval_s)
                    yield common_pb2.CountUpdate(
                        counts=await self._cache.counts(sorted(changed)), as_of_ms=_now_ms()
                    )
        except ShardUnavailable as exc:
            await context.abort(grpc.StatusCode.UNAVAILABLE, str(exc))
        except TooManySubscribers as exc:
            await context.abort(grpc.StatusCode.RESOURCE_EXHAUSTED, str(exc))

    async def PurgeReel(
        self, request: edge_pb2.PurgeReelRequest, context: Context
    ) -> edge_pb2.PurgeReelResponse:
        if request.reel_id == 0:
            await context.abort(grpc.StatusCode.INVALID_ARGUMENT, "reel_id must be set")
        if self._forget_reel is not None:
            self._forget_reel(request.reel_id)
        if self._segment_cache is None:
            return edge_pb2.PurgeReelResponse()
        purged = self._segment_cache.purge_reel(request.reel_id)
        return edge_pb2.PurgeReelResponse(objects_purged=purged.objects, bytes_purged=purged.bytes)


def _now_ms() -> int:
    return int(time.time() * 1000)
