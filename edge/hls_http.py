"""HLS over HTTP: `/reels/{id}/master.m3u8`, rendition playlists, init and media segments.

The only module mapping media errors to HTTP statuses:
- 400 malformed reel id, file name or query parameter; 403 an age-restricted reel without
  an age-verified user token (edge/age_gate.py); 404 unknown reel or file (and a file not
  ready yet, with Retry-After); 410 removed reel; 502 an object over the size limit; 503
  with Retry-After when the origin is unreachable or the edge is overloaded.

Caching headers: segments are immutable (content-addressed at the origin) and cached by
browsers and CDNs for a year; playlists get a short max-age with stale-while-revalidate;
the master varies with the client hints it was cut for; an age-restricted reel's files are
`private` (no shared cache may hand them to another viewer) and vary with Authorization.
Every answer carries a strong ETag (304 for a matching If-None-Match), `Accept-Ranges:
bytes` (206/416 for Range, with If-Range honoured) and CORS headers so browser players
(hls.js) can read it.
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping

from aiohttp import web

from edge.age_gate import AgeGate
from edge.byte_range import ByteRange, parse_range
from edge.device_hints import CLIENT_HINT_HEADERS, MalformedHint, caps_from_request
from edge.errors import (
    EdgeOverloaded,
    MediaError,
    MediaNotFound,
    MediaTooLarge,
    NotPlayableYet,
    OriginUnavailable,
    ReelRemoved,
)
from edge.hls_names import HlsFileKind, parse_hls_object
from edge.mapped_body import Body, MappedBody, body_bytes, body_view, send_file_now
from edge.master_filter import filter_master
from edge.media_object import MediaObject, strong_etag
from edge.prefetcher import Prefetcher
from edge.segment_cache import SegmentCache

SEGMENT_CACHE_CONTROL = "public, max-age=31536000, immutable"
EXPOSED_HEADERS = "Content-Length, Content-Range, ETag, Accept-Ranges"
VARY_MASTER = ", ".join(CLIENT_HINT_HEADERS)
ACCEPT_CH = "Sec-CH-Viewport-Height, Sec-CH-DPR, Downlink, Save-Data"
ZERO_COPY_MIN_BYTES = 64 * 1024
FIRST_PIECE_BYTES = 1024


def etag_matches(header: str, etag: str) -> bool:
    """If-None-Match semantics: weak comparison against any listed tag, or `*`."""
    if header.strip() == "*":
        return True
    bare = etag.removeprefix("W/")
    return any(tag.strip().removeprefix("W/") == bare for tag in header.split(","))


class HlsRoutes:
    """Handlers of the HLS paths."""

    def __init__(
        self,
        cache: SegmentCache,
        prefetcher: Prefetcher | None,
        *,
        playlist_ttl_s: float,
        playlist_stale_s: float,
        cold_start_bps: int,
        save_data_bps: int,
        retry_after_s: int,
        allow_origin: str,
        age_gate: AgeGate | None = None,
    ) -> None:
        self._cache = cache
        self._age_gate = age_gate
        self._prefetcher = prefetcher
        self._cold_start_bps = cold_start_bps
        self._save_data_bps = save_data_bps
        self._retry_after = str(retry_after_s)
        self._allow_origin = allow_origin
        self._playlist_cache_control = (
            f"public, max-age={int(playlist_ttl_s)}, stale-while-revalidate={int(playlist_stale_s)}"
        )

    def add_to(self, app: web.Application) -> None:
        app.router.add_get("/reels/{reel_id}/{name:.*}", self.get_file)

    def _error(
        self, status: int, message: str, extra: Mapping[str, str] | None = None
    ) -> web.Response:
        headers = {
            "Cache-Control": "no-store",
            "Access-Control-Allow-Origin": self._allow_origin,
            **(extra or {}),
        }
        return web.Response(status=status, text=message + "\n", headers=headers)

    def _media_error(self, exc: MediaError) -> web.Response:
        retry = {"Retry-After": self._retry_after}
        if isinstance(exc, ReelRemoved):
            return self._error(410, f"removed: {exc}", {"Cache-Control": "public, max-age=60"})
        if isinstance(exc, NotPlayableYet):
            return self._error(404, f"not playable yet: {exc}", retry)
        if isinstance(exc, MediaNotFound):
            return self._error(404, f"not found: {exc}")
        if isinstance(exc, MediaTooLarge):
            return self._error(502, f"object too large: {exc}")
        if isinstance(exc, OriginUnavailable | EdgeOverloaded):
            return self._error(503, f"temporarily unavailable: {exc}", retry)
        return self._error(502, f"origin error: {exc}")

    async def get_file(self, request: web.Request) -> web.StreamResponse:
        obj = parse_hls_object(request.match_info["reel_id"], request.match_info["name"])
        if obj is None:
            return self._error(400, "malformed path: expected /reels/<id>/<hls file name>")
        caps = None
        if obj.kind is HlsFileKind.MASTER:
            try:
                caps = caps_from_request(request.query, request.headers)
            except MalformedHint as exc:
                return self._error(400, str(exc))
        restricted = False
        if self._age_gate is not None:
            verdict = await self._age_gate.check(obj.reel_id, request.headers.get("Authorization"))
            if not verdict.allowed:
                retry = {"Retry-After": self._retry_after} if verdict.status == 503 else None
                return self._error(verdict.status, verdict.reason, retry)
            restricted = verdict.restricted
        try:
            media = await self._cache.get(obj)
        except MediaError as exc:
            return self._media_error(exc)
        if self._prefetcher is not None and obj.kind is HlsFileKind.MEDIA_SEGMENT:
            self._prefetcher.offer_next(obj)
        headers = {
            "Content-Type": media.content_type,
            "Accept-Ranges": "bytes",
            "Access-Control-Allow-Origin": self._allow_origin,
            "Access-Control-Expose-Headers": EXPOSED_HEADERS,
        }
        body = media.body
        etag = media.etag
        if caps is not None:
            body = filter_master(
                body_bytes(body).decode("utf-8", "replace"),
                caps,
                cold_start_bps=self._cold_start_bps,
                save_data_bps=self._save_data_bps,
            ).encode()
            etag = strong_etag(body)
            headers["Vary"] = VARY_MASTER
            headers["Accept-CH"] = ACCEPT_CH
        headers["ETag"] = etag
        headers["Cache-Control"] = (
            self._playlist_cache_control if obj.kind.is_playlist else SEGMENT_CACHE_CONTROL
        )
        if restricted:
            headers["Cache-Control"] = headers["Cache-Control"].replace("public", "private")
            headers["Vary"] = ", ".join(v for v in (headers.get("Vary"), "Authorization") if v)
        return await self._respond(request, MediaObject(body, media.content_type, etag), headers)

    async def _respond(
        self, request: web.Request, media: MediaObject, headers: dict[str, str]
    ) -> web.StreamResponse:
        if_none_match = request.headers.get("If-None-Match")
        if if_none_match is not None and etag_matches(if_none_match, media.etag):
            return web.Response(status=304, headers=headers)
        range_header = request.headers.get("Range")
        if_range = request.headers.get("If-Range")
        if if_range is not None and if_range.strip() != media.etag:
            range_header = None  # the client's copy is outdated: send the whole object
        size = len(media.body)
        wanted = parse_range(range_header, size)
        if wanted is None:
            return await _send(request, 200, headers, media.body, 0, size)
        headers["Content-Range"] = wanted.content_range
        if not isinstance(wanted, ByteRange):
            headers["Cache-Control"] = "no-store"
            return web.Response(status=416, headers=headers)
        return await _send(
            request, 206, headers, media.body, wanted.start, wanted.end + 1 - wanted.start
        )


class _CoalescedHeadersResponse(web.StreamResponse):
    """A StreamResponse whose header block leaves with the first body write (as
    web.Response does) instead of in a syscall and TCP segment of its own."""

    _send_headers_immediately = False


async def _send(
    request: web.Request,
    status: int,
    headers: dict[str, str],
    body: Body,
    offset: int,
    count: int,
) -> web.StreamResponse:
    """Sends `body[offset:offset+count]`, without copying it when it is large.

    A segment in a memory file goes out with sendfile (the kernel reads the pages itself,
    as nginx does with files): headers are written first, then sendfile takes what the
    socket accepts and the transport writes whatever is left (a slow client or a full
    socket buffer), so back-pressure and disconnects behave as for any other response.

    Other large bodies: aiohttp joins the header block and the body into one new bytes
    object before writing on Python < 3.12.9 (its writelines workaround), an allocation and
    a copy per response (40% of the edge's CPU for 1 MB segments in a profile); a small
    first piece with the headers, then the rest as a memoryview, avoids it.
    """
    view = body_view(body)[offset : offset + count]
    if count < ZERO_COPY_MIN_BYTES or request.method == "HEAD":
        whole = isinstance(body, bytes) and count == len(body)
        return web.Response(status=status, body=body if whole else view, headers=headers)
    transport = request.transport
    if isinstance(body, MappedBody) and _can_sendfile(transport):
        response = web.StreamResponse(status=status, headers=headers)
        response.content_length = count
        await response.prepare(request)  # writes the header block now
        sent = 0
        if transport is not None and transport.get_write_buffer_size() == 0:
            socket = transport.get_extra_info("socket")
            sent = send_file_now(socket.fileno(), body, offset, count)
        if sent < count:
            await response.write(view[sent:])
        await response.write_eof()
        return response
    coalesced = _CoalescedHeadersResponse(status=status, headers=headers)
    coalesced.content_length = count
    await coalesced.prepare(request)
    await coalesced.write(view[:FIRST_PIECE_BYTES])
    await coalesced.write(view[FIRST_PIECE_BYTES:])
    await coalesced.write_eof()
    return coalesced


def _can_sendfile(transport: asyncio.Transport | None) -> bool:
    """Plain TCP only: TLS must encrypt in the process."""
    return (
        transport is not None
        and transport.get_extra_info("sslcontext") is None
        and transport.get_extra_info("socket") is not None
    )
