"""gRPC servicer of the counter tier: the only module that maps domain errors to statuses."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from functools import partial
from typing import Any, TypeVar

import grpc
from google.protobuf.message import Message
from grpc import aio

from counter.config import CounterConfig
from counter.errors import LeaseExpired, NotOwner, Overloaded, SequenceGap, WrongShard
from counter.shard_host import ShardHost
from counter.shard_owner import CounterShard
from counter.store import now_ms
from protos import common_pb2, counter_pb2, counter_pb2_grpc
from reelstream.cassandra_client import StoreUnavailable
from reelstream.count_feed import Subscription, TooManySubscribers
from reelstream.request_limits import id_column_problem, reel_ids_problem

# Servicer methods see requests and responses of several types.
Context = aio.ServicerContext[Any, Any]

MAX_FOLLOWED_REELS = 4_000_000
WIDTHS = {
    common_pb2.BUCKET_WIDTH_MINUTE: "minute",
    common_pb2.BUCKET_WIDTH_HOUR: "hour",
    common_pb2.BUCKET_WIDTH_DAY: "day",
}

T = TypeVar("T")


async def _mapped(context: Context, call: Callable[[], Awaitable[T]]) -> T:
    try:
        return await call()
    except (WrongShard, SequenceGap) as exc:
        await context.abort(grpc.StatusCode.FAILED_PRECONDITION, str(exc))
    except (NotOwner, LeaseExpired) as exc:
        await context.abort(grpc.StatusCode.UNAVAILABLE, str(exc))
    except (Overloaded, TooManySubscribers) as exc:
        await context.abort(grpc.StatusCode.RESOURCE_EXHAUSTED, str(exc))
    except StoreUnavailable as exc:
        await context.abort(grpc.StatusCode.UNAVAILABLE, f"storage unavailable: {exc}")
    raise AssertionError("unreachable")


class CounterServicer(counter_pb2_grpc.CounterServiceServicer):
    """CounterService backed by the logical shards this process serves. A call for a shard
    served elsewhere (or being handed off) gets UNAVAILABLE: the caller asks GetShardMap."""

    def __init__(self, config: CounterConfig, host: ShardHost) -> None:
        self._config = config
        self._host = host

    async def ApplyBatch(
        self, request: counter_pb2.ApplyBatchRequest, context: Context
    ) -> counter_pb2.ApplyBatchResponse:
        problem = _check_batch(request)
        if problem:
            await context.abort(grpc.StatusCode.INVALID_ARGUMENT, problem)
        return await _mapped(
            context, lambda: self._host.shard(request.batch_id.shard).apply(request)
        )

    async def ApplyCorrections(
        self, request: counter_pb2.CorrectionBatch, context: Context
    ) -> counter_pb2.ApplyBatchResponse:
        problem = _check_correction(request)
        if problem:
            await context.abort(grpc.StatusCode.INVALID_ARGUMENT, problem)
        return await _mapped(
            context,
            lambda: self._host.shard_of_reels(list(request.reel_ids)).apply_correction(request),
        )

    async def GetCounts(
        self, request: common_pb2.GetCountsRequest, context: Context
    ) -> common_pb2.GetCountsResponse:
        problem = reel_ids_problem(request.reel_ids)
        if problem:
            await context.abort(grpc.StatusCode.INVALID_ARGUMENT, problem)
        shard = await _mapped(context, lambda: self._served(list(request.reel_ids)))
        await _mapped(context, lambda: shard.ensure_loaded(request.reel_ids))
        return common_pb2.GetCountsResponse(
            counts=shard.state.counts(request.reel_ids),
            edge_applied_seq=shard.applied_seq.get(request.edge_id, 0),
            version=shard.version,
        )

    async def _served(self, reel_ids: list[int]) -> CounterShard:
        return self._host.shard_of_reels(reel_ids)

    async def _served_id(self, shard_id: int) -> CounterShard:
        return self._host.shard(shard_id)

    async def GetTimeSeries(
        self, request: common_pb2.GetTimeSeriesRequest, context: Context
    ) -> common_pb2.GetTimeSeriesResponse:
        width = WIDTHS.get(request.width)
        if width is None:
            await context.abort(grpc.StatusCode.INVALID_ARGUMENT, "width must be set")
            raise AssertionError("unreachable")
        to_ms = request.to_ms or 2**62
        shard = await _mapped(context, lambda: self._served([request.reel_id]))
        rows = await _mapped(
            context,
            lambda: shard.stored.time_series(request.reel_id, width, request.from_ms, to_ms),
        )
        return common_pb2.GetTimeSeriesResponse(
            reel_id=request.reel_id,
            width=request.width,
            buckets=[common_pb2.TimeBucket(start_ms=s, views=v, likes=lk) for s, v, lk in rows],
        )

    async def GetLikeState(
        self, request: common_pb2.GetLikeStateRequest, context: Context
    ) -> common_pb2.GetLikeStateResponse:
        problem = reel_ids_problem(request.reel_ids)
        if problem:
            await context.abort(grpc.StatusCode.INVALID_ARGUMENT, problem)
        shard = await _mapped(context, lambda: self._served(list(request.reel_ids)))
        await _mapped(context, lambda: shard.ensure_loaded(request.reel_ids))
        return common_pb2.GetLikeStateResponse(
            liked=shard.state.liked(request.user_id, request.reel_ids)
        )

    async def WatchCounts(
        self, request: common_pb2.WatchCountsRequest, context: Context
    ) -> AsyncIterator[common_pb2.CountUpdate]:
        # The shard of the listed reels; with none listed, every reel of shard 0 (a process
        # hosts several shards: watch each shard by listing reels of it).
        shard = await _mapped(context, lambda: self._served(list(request.reel_ids)))
        try:
            follow_all = not request.reel_ids
            async with shard.feed.subscribe(request.reel_ids, follow_all) as subscription:
                # An empty first message tells the subscriber that every later change of a
                # watched reel will reach it.
                yield common_pb2.CountUpdate(
                    as_of_ms=now_ms(),
                    edge_applied_seq=shard.applied_seq.get(request.edge_id, 0),
                    version=shard.version,
                )
                while True:
                    changed = await subscription.next_changes(
                        self._config.watch_interval_s, heartbeat_s=1.0
                    )
                    if shard.closing or shard.fenced.is_set():
                        await context.abort(
                            grpc.StatusCode.UNAVAILABLE,
                            f"shard {shard.shard_id} moved; ask GetShardMap",
                        )
                    if not changed:
                        continue
                    await _mapped(context, partial(shard.ensure_loaded, changed))
                    # Counts, sequence and version are read together, with no await between.
                    yield common_pb2.CountUpdate(
                        counts=shard.state.counts(sorted(changed)),
                        as_of_ms=now_ms(),
                        edge_applied_seq=shard.applied_seq.get(request.edge_id, 0),
                        version=shard.version,
                    )
        except TooManySubscribers as exc:
            await context.abort(grpc.StatusCode.RESOURCE_EXHAUSTED, str(exc))

    async def FollowCounts(
        self,
        request_iterator: AsyncIterator[counter_pb2.FollowCountsRequest],
        context: Context,
    ) -> AsyncIterator[common_pb2.CountUpdate]:
        first = await anext(aiter(request_iterator), None)
        if first is None:
            return
        shard = await _mapped(context, lambda: self._served_id(first.shard))
        edge_id = first.edge_id
        try:
            async with shard.feed.subscribe((), follow_all=False) as subscription:

                async def read_requests() -> None:
                    nonlocal edge_id
                    async for request in request_iterator:
                        edge_id = request.edge_id or edge_id
                        subscription.unfollow(request.unfollow_reel_ids)
                        if len(subscription.followed) + len(request.follow_reel_ids) > (
                            MAX_FOLLOWED_REELS
                        ):
                            raise TooManySubscribers(
                                f"at most {MAX_FOLLOWED_REELS} followed reels per stream"
                            )
                        subscription.follow(request.follow_reel_ids)

                subscription.follow(first.follow_reel_ids)
                reader = asyncio.create_task(read_requests())
                try:
                    while True:
                        changed = await _next_or_reader_error(
                            subscription, reader, self._config.watch_interval_s
                        )
                        if shard.closing or shard.fenced.is_set():
                            # Handed off: the follower reconnects to the new owner.
                            await context.abort(
                                grpc.StatusCode.UNAVAILABLE,
                                f"shard {shard.shard_id} moved; ask GetShardMap",
                            )
                        await _mapped(context, partial(shard.ensure_loaded, changed))
                        # Counts, sequence and version are read together, with no await.
                        yield common_pb2.CountUpdate(
                            counts=shard.state.counts(sorted(changed)),
                            as_of_ms=now_ms(),
                            edge_applied_seq=shard.applied_seq.get(edge_id, 0),
                            version=shard.version,
                        )
                finally:
                    reader.cancel()
        except TooManySubscribers as exc:
            await context.abort(grpc.StatusCode.RESOURCE_EXHAUSTED, str(exc))

    async def GetShardInfo(
        self, request: counter_pb2.GetShardInfoRequest, context: Context
    ) -> counter_pb2.ShardInfo:
        """A summary of this process: its first served shard, keys and batches of all."""
        served = self._host.served
        first = served[min(served)] if served else None
        lease = first.lease if first is not None else None
        return counter_pb2.ShardInfo(
            shard=first.shard_id if first is not None else 0,
            shard_count=self._config.shard_count,
            epoch=lease.epoch if lease else 0,
            owner=self._config.owner_id,
            keys=sum(
                len(shard.state.reels) + len(shard.state.unloaded) for shard in served.values()
            ),
            batches_applied=sum(shard.batches_applied for shard in served.values()),
        )

    async def GetShardMap(
        self, request: counter_pb2.GetShardMapRequest, context: Context
    ) -> counter_pb2.ShardMap:
        return await _mapped(context, self._host.shard_map)


def _check_batch(batch: counter_pb2.ApplyBatchRequest) -> str | None:
    if not batch.batch_id.edge_id or batch.batch_id.seq == 0:
        return "batch_id needs edge_id and a seq >= 1"
    if not len(batch.view_reel_ids) == len(batch.view_minutes) == len(batch.view_counts):
        return "view columns differ in length"
    if not (
        len(batch.like_reel_ids)
        == len(batch.like_user_ids)
        == len(batch.like_ts_ms)
        == len(batch.like_values)
    ):
        return "like columns differ in length"
    if len(batch.viewer_reel_ids) != len(batch.viewer_user_ids):
        return "viewer columns differ in length"
    corrections = (
        batch.correction_reel_ids,
        batch.correction_view_deltas,
        batch.correction_like_deltas,
    )
    if len({len(column) for column in corrections}) > 1:
        return "correction columns differ in length"
    return _ids_problem(batch, _BATCH_ID_COLUMNS) or _deltas_problem(
        batch.correction_view_deltas, batch.correction_like_deltas
    )


# Ids are Cassandra bigints: one out of range would be applied in memory, then fail every
# write of the shard's snapshots (and stop the shard), so the whole batch is refused.
_BATCH_ID_COLUMNS = (
    "view_reel_ids",
    "like_reel_ids",
    "like_user_ids",
    "viewer_reel_ids",
    "viewer_user_ids",
    "correction_reel_ids",
)


# A correction moves at most 2^40 views or likes of a reel, so totals stay far inside the
# bigint range (an overflowing total would fail every snapshot write, like a bad id).
MAX_CORRECTION_DELTA = 2**40


def _deltas_problem(*columns: Sequence[int]) -> str | None:
    for column in columns:
        if len(column) and max(abs(min(column)), abs(max(column))) > MAX_CORRECTION_DELTA:
            return "correction deltas must be within +-2^40"
    return None


def _ids_problem(batch: Message, columns: tuple[str, ...]) -> str | None:
    for column in columns:
        problem = id_column_problem(column, getattr(batch, column))
        if problem:
            return problem
    return None


MAX_CORRECTION_REELS = 100_000


def _check_correction(batch: counter_pb2.CorrectionBatch) -> str | None:
    if not batch.batch_id or len(batch.batch_id) > 200:
        return "batch_id is required (at most 200 characters)"
    if not len(batch.reel_ids) == len(batch.view_deltas) == len(batch.like_deltas):
        return "reel_ids, view_deltas and like_deltas differ in length"
    if not batch.reel_ids:
        return "a correction needs at least one reel"
    if len(batch.reel_ids) > MAX_CORRECTION_REELS:
        return f"at most {MAX_CORRECTION_REELS} reels per correction batch"
    return _ids_problem(batch, ("reel_ids",)) or _deltas_problem(
        batch.view_deltas, batch.like_deltas
    )


async def _next_or_reader_error(
    subscription: Subscription, reader: asyncio.Task[None], coalesce_s: float
) -> set[int]:
    """The next changes; re-raises a failure of the request reader (such as too many
    followed reels) as soon as it happens rather than at the next change."""
    # The heartbeat tells the follower which of its batches are included even when none of
    # its followed reels changes, so it can forget acknowledged batches.
    waiter = asyncio.ensure_future(subscription.next_changes(coalesce_s, heartbeat_s=1.0))
    if not reader.done():
        await asyncio.wait({waiter, reader}, return_when=asyncio.FIRST_COMPLETED)
    if reader.done() and not reader.cancelled() and reader.exception() is not None:
        waiter.cancel()
        reader.result()
    return await waiter
