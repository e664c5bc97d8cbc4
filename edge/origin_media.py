"""Playlists and segments from the origin (GetManifest, streamed GetSegment) over gRPC.

The one place where the origin's status codes become the edge's media errors:
NOT_FOUND (or INVALID_ARGUMENT) -> MediaNotFound; FAILED_PRECONDITION whose message says
"removed" -> ReelRemoved, any other FAILED_PRECONDITION -> NotPlayableYet; everything else
(UNAVAILABLE, DEADLINE_EXCEEDED, INTERNAL, ...) -> OriginUnavailable. A segment is read
whole, checked against `max_object_bytes` and against the size the first chunk announced,
so a truncated stream is an error and never a cached half segment.
"""

from __future__ import annotations

import grpc
from grpc import aio
from prometheus_client import Counter

from edge.errors import (
    MediaNotFound,
    MediaTooLarge,
    NotPlayableYet,
    OriginUnavailable,
    ReelRemoved,
)
from edge.hls_names import HlsObject
from edge.mapped_body import body_view, hold_body
from edge.media_object import MediaObject, quoted_etag
from protos import origin_pb2, origin_pb2_grpc
from reelstream.member_pool import MemberPool

ORIGIN_FETCHES = Counter(
    "edge_origin_fetches_total", "Files requested from the origin", ["kind", "outcome"]
)
ORIGIN_BYTES = Counter("edge_origin_bytes_total", "Bytes received from the origin")


def _media_error(exc: aio.AioRpcError, obj: HlsObject) -> Exception:
    code = exc.code()
    what = f"reel {obj.reel_id} {obj.name}"
    details = exc.details() or ""
    if code in (grpc.StatusCode.NOT_FOUND, grpc.StatusCode.INVALID_ARGUMENT):
        return MediaNotFound(f"{what}: {details}")
    if code == grpc.StatusCode.FAILED_PRECONDITION:
        if "removed" in details.lower():
            return ReelRemoved(f"{what}: {details}")
        return NotPlayableYet(f"{what}: {details}")
    return OriginUnavailable(f"{what}: origin answered {code.name}: {details}")


class OriginMedia:
    """A MediaSource reading from the origin's gRPC media API."""

    def __init__(self, origin: MemberPool, timeout_s: float, max_object_bytes: int) -> None:
        # Balanced over the origin replicas; the pool (owned by the edge) swaps channels.
        self._origins = origin
        self._timeout_s = timeout_s
        self._max_object_bytes = max_object_bytes

    async def fetch(self, obj: HlsObject) -> MediaObject:
        kind = obj.kind.value
        try:
            if obj.kind.is_playlist:
                media = await self._manifest(obj)
            else:
                media = await self._segment(obj)
        except aio.AioRpcError as exc:
            error = _media_error(exc, obj)
            ORIGIN_FETCHES.labels(kind, type(error).__name__).inc()
            raise error from None
        except Exception as exc:
            ORIGIN_FETCHES.labels(kind, type(exc).__name__).inc()
            raise
        ORIGIN_FETCHES.labels(kind, "ok").inc()
        ORIGIN_BYTES.inc(len(media.body))
        return media

    async def _manifest(self, obj: HlsObject) -> MediaObject:
        manifest = await self._origins.stub(origin_pb2_grpc.OriginServiceStub).GetManifest(
            origin_pb2.GetManifestRequest(reel_id=obj.reel_id, name=obj.name),
            timeout=self._timeout_s,
        )
        body = manifest.body
        if len(body) > self._max_object_bytes:
            raise MediaTooLarge(f"reel {obj.reel_id} {obj.name}: {len(body)} bytes")
        return MediaObject(body, manifest.content_type or obj.content_type, quoted_etag("", body))

    async def _segment(self, obj: HlsObject) -> MediaObject:
        call = self._origins.stub(origin_pb2_grpc.OriginServiceStub).GetSegment(
            origin_pb2.GetSegmentRequest(reel_id=obj.reel_id, name=obj.name),
            timeout=self._timeout_s,
        )
        parts: list[bytes] = []
        received = 0
        announced = -1
        etag = ""
        try:
            async for chunk in call:
                if announced < 0:
                    announced = chunk.total_bytes
                    etag = chunk.etag
                    if announced > self._max_object_bytes:
                        raise MediaTooLarge(f"reel {obj.reel_id} {obj.name}: {announced} bytes")
                received += len(chunk.data)
                if received > self._max_object_bytes:
                    raise MediaTooLarge(f"reel {obj.reel_id} {obj.name}: over {received} bytes")
                parts.append(chunk.data)
        finally:
            if not call.done():
                call.cancel()
        if announced > 0 and received != announced:
            raise OriginUnavailable(
                f"reel {obj.reel_id} {obj.name}: stream ended at {received} of {announced} bytes"
            )
        body = hold_body(parts, received)
        return MediaObject(body, obj.content_type, quoted_etag(etag, body_view(body)))

    async def close(self) -> None:
        """Nothing to release: the origin pool is the edge's."""
