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
import functools
import re
import socket
import time
from collections.abc import Coroutine, Mapping
from dataclasses import dataclass
from email.utils import formatdate
from http import HTTPStatus
from types import MappingProxyType

from aiohttp import web
from aiohttp.abc import AbstractStreamWriter
from aiohttp.http import SERVER_SOFTWARE, HttpVersion, HttpVersion10, HttpVersion11

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
from edge.hls_names import HlsFileKind, HlsObject, parse_hls_object
from edge.mapped_body import Body, MappedBody, body_bytes, body_view, send_head_and_file
from edge.master_filter import filter_master
from edge.media_object import strong_etag
from edge.prefetcher import Prefetcher
from edge.segment_cache import SegmentCache

SEGMENT_CACHE_CONTROL = "public, max-age=31536000, immutable"
EXPOSED_HEADERS = "Content-Length, Content-Range, ETag, Accept-Ranges"
VARY_MASTER = ", ".join(CLIENT_HINT_HEADERS)
ACCEPT_CH = "Sec-CH-Viewport-Height, Sec-CH-DPR, Downlink, Save-Data"
ZERO_COPY_MIN_BYTES = 64 * 1024
FIRST_PIECE_BYTES = 1024
_REASONS = {status.value: status.phrase for status in HTTPStatus}
# What aiohttp refuses in header values (header injection): controls other than tab.
_FORBIDDEN_IN_HEADERS = re.compile(r"[\x00-\x08\x0a-\x1f\x7f]")


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
        match_info = request.match_info
        obj = _parse_path(match_info["reel_id"], match_info["name"])
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
        media = self._cache.cached_segment(obj)
        if media is None:
            try:
                media = await self._cache.get(obj)
            except MediaError as exc:
                return self._media_error(exc)
        if self._prefetcher is not None and obj.kind is HlsFileKind.MEDIA_SEGMENT:
            self._prefetcher.offer_next(obj)
        body = media.body
        etag = media.etag
        vary = accept_ch = ""
        if caps is not None:
            body = filter_master(
                body_bytes(body).decode("utf-8", "replace"),
                caps,
                cold_start_bps=self._cold_start_bps,
                save_data_bps=self._save_data_bps,
            ).encode()
            etag = strong_etag(body)
            vary, accept_ch = VARY_MASTER, ACCEPT_CH
        cache_control = (
            self._playlist_cache_control if obj.kind.is_playlist else SEGMENT_CACHE_CONTROL
        )
        if restricted:
            cache_control = cache_control.replace("public", "private")
            vary = f"{vary}, Authorization" if vary else "Authorization"
        head = object_headers(
            media.content_type, etag, cache_control, vary, accept_ch, self._allow_origin
        )
        return await _respond(request, head, body)


@dataclass(frozen=True, slots=True)
class ObjectHeaders:
    """The headers of every answer about one object (all but Content-Length, Content-Range
    and those aiohttp adds), as a mapping and as the lines of a header block."""

    etag: str
    fields: Mapping[str, str]
    lines: bytes
    """`Name: value\r\n` for each field, checked for control characters."""

    def as_dict(self) -> dict[str, str]:
        return dict(self.fields)


@functools.lru_cache(maxsize=4096)
def object_headers(
    content_type: str, etag: str, cache_control: str, vary: str, accept_ch: str, allow_origin: str
) -> ObjectHeaders:
    """Headers of an object, built once per distinct set of values: a hot segment is
    answered thousands of times a second with the same ones."""
    fields = {
        "Content-Type": content_type,
        "Accept-Ranges": "bytes",
        "Access-Control-Allow-Origin": allow_origin,
        "Access-Control-Expose-Headers": EXPOSED_HEADERS,
    }
    if vary:
        fields["Vary"] = vary
    if accept_ch:
        fields["Accept-CH"] = accept_ch
    fields["ETag"] = etag
    fields["Cache-Control"] = cache_control
    if _FORBIDDEN_IN_HEADERS.search("".join(fields.values())) is not None:
        raise ValueError("control character in a response header value")
    lines = "".join(f"{name}: {value}\r\n" for name, value in fields.items())
    return ObjectHeaders(etag, MappingProxyType(fields), lines.encode("latin-1"))


@functools.lru_cache(maxsize=4096)
def _parse_path(reel_id_text: str, name: str) -> HlsObject | None:
    """`parse_hls_object`, remembered for the paths asked most (the result is immutable)."""
    return parse_hls_object(reel_id_text, name)


def _respond(
    request: web.Request, head: ObjectHeaders, body: Body
) -> Coroutine[None, None, web.StreamResponse]:
    """The coroutine that answers `request` with `body` (200, 206, 304 or 416).

    `_respond` and `_send` decide without awaiting and return the coroutine that writes,
    so a hit costs one coroutine instead of a chain of three.
    """
    headers = request.headers
    if_none_match = headers.get("If-None-Match")
    if if_none_match is not None and etag_matches(if_none_match, head.etag):
        return _ready(web.Response(status=304, headers=head.as_dict()))
    range_header = headers.get("Range")
    size = len(body)
    if range_header is None:
        return _send(request, 200, head, None, body, 0, size)
    if_range = headers.get("If-Range")
    if if_range is not None and if_range.strip() != head.etag:
        range_header = None  # the client's copy is outdated: send the whole object
    wanted = parse_range(range_header, size)
    if wanted is None:
        return _send(request, 200, head, None, body, 0, size)
    if not isinstance(wanted, ByteRange):
        fields = head.as_dict()
        fields["Content-Range"] = wanted.content_range
        fields["Cache-Control"] = "no-store"
        return _ready(web.Response(status=416, headers=fields))
    return _send(request, 206, head, wanted.content_range, body, wanted.start, wanted.length)


async def _ready(response: web.StreamResponse) -> web.StreamResponse:
    return response


class _CoalescedHeadersResponse(web.StreamResponse):
    """A StreamResponse whose header block leaves with the first body write (as
    web.Response does) instead of in a syscall and TCP segment of its own."""

    _send_headers_immediately = False


def _send(
    request: web.Request,
    status: int,
    head: ObjectHeaders,
    content_range: str | None,
    body: Body,
    offset: int,
    count: int,
) -> Coroutine[None, None, web.StreamResponse]:
    """Sends `body[offset:offset+count]`, without copying it when it is large.

    A segment in a memory file goes out with sendfile (the kernel reads the pages itself,
    as nginx does with files): see `_send_mapped`.

    Other large bodies: aiohttp joins the header block and the body into one new bytes
    object before writing on Python < 3.12.9 (its writelines workaround), an allocation and
    a copy per response (40% of the edge's CPU for 1 MB segments in a profile); a small
    first piece with the headers, then the rest as a memoryview, avoids it.
    """
    if count >= ZERO_COPY_MIN_BYTES and request.method != "HEAD":
        transport = request.transport
        if isinstance(body, MappedBody) and transport is not None:
            sock = transport.get_extra_info("socket")
            if sock is not None and transport.get_extra_info("sslcontext") is None:
                return _send_mapped(
                    request, transport, sock, status, head, content_range, body, offset, count
                )
    headers = head.as_dict()
    if content_range is not None:
        headers["Content-Range"] = content_range
    if count < ZERO_COPY_MIN_BYTES or request.method == "HEAD":
        whole = isinstance(body, bytes) and count == len(body)
        return _ready(
            web.Response(
                status=status,
                body=body if whole else body_view(body)[offset : offset + count],
                headers=headers,
            )
        )
    return _send_coalesced(request, status, headers, body_view(body)[offset : offset + count])


async def _send_coalesced(
    request: web.Request, status: int, headers: dict[str, str], view: memoryview
) -> web.StreamResponse:
    coalesced = _CoalescedHeadersResponse(status=status, headers=headers)
    coalesced.content_length = len(view)
    await coalesced.prepare(request)
    await coalesced.write(view[:FIRST_PIECE_BYTES])
    await coalesced.write(view[FIRST_PIECE_BYTES:])
    await coalesced.write_eof()
    return coalesced


class _SentResponse(web.StreamResponse):
    """A response the handler has written to the connection itself, header block and
    body: aiohttp's finishing step (prepare, write_eof) has nothing left to send, and the
    connection stays open if the header block said so. Nothing about it changes per
    request, so one instance per (status, keep-alive) serves them all (`_SENT`)."""

    def __init__(self, status: int, keep_alive: bool) -> None:
        super().__init__(status=status)
        self._sent_keep_alive = keep_alive

    @property
    def keep_alive(self) -> bool:
        return self._sent_keep_alive

    async def prepare(self, request: web.BaseRequest) -> AbstractStreamWriter | None:
        return None

    async def write_eof(self, data: bytes = b"") -> None:
        return None


async def _send_mapped(
    request: web.Request,
    transport: asyncio.Transport,
    sock: socket.socket,
    status: int,
    head: ObjectHeaders,
    content_range: str | None,
    body: MappedBody,
    offset: int,
    count: int,
) -> web.StreamResponse:
    """Writes the response to a plain TCP connection without aiohttp's response machinery.

    The header block is the one aiohttp would write (the handler's headers, then
    Content-Length, Date, Server and Connection by aiohttp's rules); it goes with MSG_MORE,
    then sendfile takes what the socket accepts of the body, so header and body leave in
    full segments and nothing is copied through the process. Whatever the socket does not
    take at once (a slow client, a full send buffer), and everything when the transport
    still holds earlier bytes (pipelining), goes through aiohttp's writer: back-pressure,
    ordering and disconnects behave as for any other response.
    """
    keep_alive = request.keep_alive
    block = _header_block(request.version, status, head, content_range, count, keep_alive)
    head_sent = body_sent = 0
    if transport.get_write_buffer_size() == 0:
        head_sent, body_sent = send_head_and_file(
            sock.fileno(), sock.family, block, body, offset, count
        )
    try:
        writer = request.writer
        if head_sent < len(block):
            await writer.write(block[head_sent:])
        if body_sent < count:
            await writer.write(body.view[offset + body_sent : offset + count])
    except Exception:
        if head_sent:
            # Part of a response went around aiohttp's writer: the connection cannot
            # carry an error answer after it, only be closed.
            transport.close()
            raise ConnectionResetError("connection lost mid-response") from None
        raise
    return _SENT[status, keep_alive]


_SENT = {
    (status, keep_alive): _SentResponse(status, keep_alive)
    for status in (200, 206)
    for keep_alive in (False, True)
}


def _header_block(
    version: HttpVersion,
    status: int,
    head: ObjectHeaders,
    content_range: str | None,
    length: int,
    keep_alive: bool,
) -> bytes:
    """The status line and headers aiohttp would write for this response."""
    if keep_alive:
        connection = "Connection: keep-alive\r\n" if version == HttpVersion10 else ""
    else:
        connection = "Connection: close\r\n" if version == HttpVersion11 else ""
    ranged = f"Content-Range: {content_range}\r\n" if content_range is not None else ""
    return b"".join(
        (
            f"HTTP/{version.major}.{version.minor} {status} {_REASONS[status]}\r\n".encode(),
            head.lines,
            (
                f"{ranged}Content-Length: {length}\r\nDate: {_HTTP_DATE.now()}\r\n"
                f"Server: {SERVER_SOFTWARE}\r\n{connection}\r\n"
            ).encode("latin-1"),
        )
    )


class _HttpDate:
    """The Date header value, formatted once per second."""

    def __init__(self) -> None:
        self._second = -1
        self._text = ""

    def now(self) -> str:
        second = int(time.time())
        if second != self._second:
            self._second = second
            self._text = formatdate(second, usegmt=True)
        return self._text


_HTTP_DATE = _HttpDate()
