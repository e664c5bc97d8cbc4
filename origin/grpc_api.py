"""gRPC servicer of the origin: the only origin module that maps errors to statuses."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import grpc
from grpc import aio

from origin.errors import (
    MediaNotFound,
    NotPlayable,
    OriginBusy,
    OriginError,
    UploadConflict,
    UploadRejected,
)
from origin.media_names import PLAYLIST_CONTENT_TYPE
from origin.media_reader import MediaReader
from origin.reel_catalog import ReelCatalog
from origin.upload_intake import UploadIntake
from protos import origin_pb2, origin_pb2_grpc
from reelstream.cassandra_client import StoreUnavailable
from reelstream.request_limits import (
    MAX_ID,
    MAX_REELS_PER_CALL,
    reel_id_problem,
    reel_ids_problem,
)

# Servicer methods see requests and responses of several types.
Context = aio.ServicerContext[Any, Any]


class OriginServicer(origin_pb2_grpc.OriginServiceServicer):
    def __init__(self, catalog: ReelCatalog, uploads: UploadIntake, media: MediaReader) -> None:
        self._catalog = catalog
        self._uploads = uploads
        self._media = media

    async def GetReel(
        self, request: origin_pb2.GetReelRequest, context: Context
    ) -> origin_pb2.Reel:
        problem = reel_id_problem(request.reel_id)
        if problem:
            await context.abort(grpc.StatusCode.INVALID_ARGUMENT, problem)
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
        for reel in request.reels:
            problem = imported_reel_problem(reel)
            if problem:
                await context.abort(
                    grpc.StatusCode.INVALID_ARGUMENT, f"reel {reel.reel_id}: {problem}"
                )
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
        try:
            return await self._uploads.receive(request_iterator)
        except (OriginError, StoreUnavailable) as exc:
            await _abort(context, exc)
        raise AssertionError("unreachable")

    async def GetManifest(
        self, request: origin_pb2.GetManifestRequest, context: Context
    ) -> origin_pb2.Manifest:
        problem = reel_id_problem(request.reel_id)
        if problem:
            await context.abort(grpc.StatusCode.INVALID_ARGUMENT, problem)
        try:
            body = await self._media.manifest(request.reel_id, request.name)
        except (OriginError, StoreUnavailable) as exc:
            await _abort(context, exc)
        return origin_pb2.Manifest(body=body, content_type=PLAYLIST_CONTENT_TYPE)

    async def GetSegment(
        self, request: origin_pb2.GetSegmentRequest, context: Context
    ) -> AsyncIterator[origin_pb2.SegmentChunk]:
        problem = reel_id_problem(request.reel_id)
        if problem:
            await context.abort(grpc.StatusCode.INVALID_ARGUMENT, problem)
        try:
            header, chunks = await self._media.segment(request.reel_id, request.name)
        except (OriginError, StoreUnavailable) as exc:
            await _abort(context, exc)
        first = True
        async for data in chunks:
            if first:
                yield origin_pb2.SegmentChunk(
                    data=data, total_bytes=header.total_bytes, etag=header.etag
                )
                first = False
            else:
                yield origin_pb2.SegmentChunk(data=data)


# Cassandra `int` columns are signed 32-bit.
MAX_INT32 = 2**31 - 1
KNOWN_STATES = frozenset(origin_pb2.ReelState.values())


def imported_reel_problem(reel: origin_pb2.Reel) -> str | None:
    """Why `reel` cannot be stored as given (found by the bad-input suite: values past
    the columns' range and unknown states failed in the driver with UNKNOWN)."""
    problem = reel_id_problem(reel.reel_id)
    if problem:
        return problem
    if reel.creator_id > MAX_ID:
        return "creator_id must be below 2^63"
    if reel.state not in KNOWN_STATES:
        return f"unknown state {reel.state}"
    if reel.duration_ms > MAX_INT32 or reel.progress_percent > 100:
        return "duration_ms must be below 2^31 and progress_percent at most 100"
    return None


_STATUS_OF_ERROR: tuple[tuple[type[Exception], grpc.StatusCode], ...] = (
    (UploadRejected, grpc.StatusCode.INVALID_ARGUMENT),
    (UploadConflict, grpc.StatusCode.FAILED_PRECONDITION),
    (OriginBusy, grpc.StatusCode.RESOURCE_EXHAUSTED),
    (MediaNotFound, grpc.StatusCode.NOT_FOUND),
    (NotPlayable, grpc.StatusCode.FAILED_PRECONDITION),
    (StoreUnavailable, grpc.StatusCode.UNAVAILABLE),
)


async def _abort(context: Context, exc: Exception) -> None:
    for error_type, code in _STATUS_OF_ERROR:
        if isinstance(exc, error_type):
            await context.abort(code, str(exc))
    await context.abort(grpc.StatusCode.INTERNAL, "internal error")
