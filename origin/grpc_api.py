"""gRPC servicer of the origin: the only origin module that maps errors to statuses."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import grpc
from grpc import aio

from origin.reel_catalog import ReelCatalog
from protos import origin_pb2, origin_pb2_grpc
from reelstream.cassandra_client import StoreUnavailable

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
