"""gRPC servicer of the origin: the only origin module that maps errors to statuses."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import grpc
from grpc import aio

from origin.reel_catalog import ReelCatalog
from protos import origin_pb2, origin_pb2_grpc
from reelstream.cassandra_client import StoreUnavailable
from reelstream.request_limits import MAX_REELS_PER_CALL, reel_ids_problem

# Servicer methods see requests and responses of several types.
Context = aio.ServicerContext[Any, Any]

VIDEO_PATH_PENDING = "the video path (upload, transcoding, HLS) is not built yet"


class OriginServicer(origin_pb2_grpc.OriginServiceServicer):
    def __init__(self, catalog: ReelCatalog) -> None:
        self._catalog = catalog

    async def GetReel(
        self, request: origin_pb2.GetReelRequest, context: Context
    ) -> origin_pb2.Reel:
        if request.reel_id == 0:
            await context.abort(grpc.StatusCode.INVALID_ARGUMENT, "reel_id must be set")
        try:
            reel = await self._catalog.get(request.reel_id)
        except StoreUnavailable as exc:
            await context.abort(grpc.StatusCode.UNAVAILABLE, str(exc))
        if reel is None:
            await context.abort(grpc.StatusCode.NOT_FOUND, f"no reel {request.reel_id}")
        assert reel is not None
        return reel

    async def GetReels(
        self, request: origin_pb2.GetReelsRequest, context: Context
    ) -> origin_pb2.GetReelsResponse:
        problem = reel_ids_problem(request.reel_ids)
        if problem:
            await context.abort(grpc.StatusCode.INVALID_ARGUMENT, problem)
        try:
            briefs = await self._catalog.briefs(list(request.reel_ids))
        except StoreUnavailable as exc:
            await context.abort(grpc.StatusCode.UNAVAILABLE, str(exc))
        return origin_pb2.GetReelsResponse(reels=briefs)

    async def ImportReels(
        self, request: origin_pb2.ImportReelsRequest, context: Context
    ) -> origin_pb2.ImportReelsResponse:
        if len(request.reels) > MAX_REELS_PER_CALL:
            await context.abort(
                grpc.StatusCode.INVALID_ARGUMENT, f"at most {MAX_REELS_PER_CALL} reels per call"
            )
        bad = [r.reel_id for r in request.reels if not 0 < r.reel_id < 2**63]
        if bad:
            await context.abort(grpc.StatusCode.INVALID_ARGUMENT, f"bad reel ids: {bad[:5]}")
        try:
            await self._catalog.put_many(list(request.reels))
        except StoreUnavailable as exc:
            await context.abort(grpc.StatusCode.UNAVAILABLE, str(exc))
        return origin_pb2.ImportReelsResponse(imported=len(request.reels))

    async def Upload(
        self,
        request_iterator: AsyncIterator[origin_pb2.UploadRequest],
        context: Context,
    ) -> origin_pb2.UploadResponse:
        await context.abort(grpc.StatusCode.UNIMPLEMENTED, VIDEO_PATH_PENDING)
        raise AssertionError("unreachable")

    async def GetManifest(
        self, request: origin_pb2.GetManifestRequest, context: Context
    ) -> origin_pb2.Manifest:
        await context.abort(grpc.StatusCode.UNIMPLEMENTED, VIDEO_PATH_PENDING)
        raise AssertionError("unreachable")

    async def GetSegment(
        self, request: origin_pb2.GetSegmentRequest, context: Context
    ) -> AsyncIterator[origin_pb2.SegmentChunk]:
        await context.abort(grpc.StatusCode.UNIMPLEMENTED, VIDEO_PATH_PENDING)
        yield origin_pb2.SegmentChunk()  # pragma: no cover - makes this an async generator
