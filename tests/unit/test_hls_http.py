"""The HLS routes over a real socket (aiohttp on 127.0.0.1, port 0), read byte by byte by a
raw HTTP/1.x client: the header block the edge writes itself for segments it sends with
sendfile, keep-alive rules, pipelining, ranges and conditional requests."""

from __future__ import annotations

import asyncio
import os
import re
import time
from collections.abc import AsyncIterator, Iterable
from typing import cast

import pytest
from aiohttp import web
from prometheus_client import REGISTRY

from edge.age_gate import AgeGate
from edge.errors import MediaNotFound
from edge.event_validation import ReelInfo
from edge.hls_http import HlsRoutes
from edge.hls_names import HlsObject
from edge.http_server import EdgeHttpServer
from edge.mapped_body import MappedBody, hold_body
from edge.media_object import MediaObject, strong_etag
from edge.reel_directory import ReelDirectory
from edge.segment_cache import SegmentCache
from reelstream.user_tokens import mint

SEGMENT = os.urandom(200 * 1024)
SMALL = os.urandom(3000)
KEYS = {"k1": b"secret"}
RESTRICTED_REEL = 5
REMOVED_REEL = 6


class FolderOfFiles:
    def __init__(self, files: dict[str, bytes]) -> None:
        self.files = files

    async def fetch(self, obj: HlsObject) -> MediaObject:
        data = self.files.get(obj.name)
        if data is None:
            raise MediaNotFound(obj.name)
        return MediaObject(hold_body([data], len(data)), obj.content_type, strong_etag(data))

    async def close(self) -> None:
        return None


class FakeDirectory:
    async def lookup(self, reel_ids: Iterable[int]) -> dict[int, ReelInfo | None]:
        states = {
            RESTRICTED_REEL: ReelInfo(removed=False, duration_ms=1000, age_restricted=True),
            REMOVED_REEL: ReelInfo(removed=True, duration_ms=1000),
        }
        return {reel_id: states.get(reel_id) for reel_id in reel_ids}


@pytest.fixture
async def port() -> AsyncIterator[int]:
    files = {"360p_000.m4s": SEGMENT, "360p_001.m4s": SMALL}
    cache = SegmentCache(FolderOfFiles(files), 10 * 1024 * 1024, 2.0, 30.0)
    app = web.Application()
    HlsRoutes(
        cache,
        None,
        playlist_ttl_s=2.0,
        playlist_stale_s=30.0,
        cold_start_bps=1_000_000,
        save_data_bps=500_000,
        retry_after_s=2,
        allow_origin="*",
        age_gate=AgeGate(cast(ReelDirectory, FakeDirectory()), KEYS),
    ).add_to(app)
    server = EdgeHttpServer(
        app, "127.0.0.1:0", reuse_port=False, shutdown_timeout_s=1.0, allow_origin="*"
    )
    await server.start()
    try:
        yield server.port
    finally:
        await server.stop()
        await cache.close()


def sendfile_bytes() -> float:
    return REGISTRY.get_sample_value("edge_http_sendfile_bytes_total") or 0.0


class Reply:
    def __init__(self, head: bytes, body: bytes) -> None:
        lines = head.decode("latin-1").split("\r\n")
        self.status_line = lines[0]
        self.status = int(lines[0].split()[1])
        self.headers = dict(line.split(": ", 1) for line in lines[1:] if line)
        self.body = body


async def read_reply(reader: asyncio.StreamReader, method: str = "GET") -> Reply:
    head = await reader.readuntil(b"\r\n\r\n")
    match = re.search(rb"\r\nContent-Length: (\d+)\r\n", head, re.IGNORECASE)
    length = int(match[1]) if match and method != "HEAD" else 0
    body = await reader.readexactly(length)
    return Reply(head[:-4], body)


def request(path: str, version: str = "1.1", **headers: str) -> bytes:
    lines = [f"GET {path} HTTP/{version}", "Host: edge"]
    lines += [f"{name.replace('_', '-')}: {value}" for name, value in headers.items()]
    return ("\r\n".join(lines) + "\r\n\r\n").encode()


async def test_a_cached_segment_is_sent_whole_with_every_header_and_the_connection_kept(
    port: int,
) -> None:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        sent_before = sendfile_bytes()
        for _ in range(3):  # the first is a miss, then hits; one connection throughout
            writer.write(request("/reels/1/360p_000.m4s"))
            reply = await read_reply(reader)
            assert reply.status_line == "HTTP/1.1 200 OK"
            assert reply.body == SEGMENT
            assert reply.headers["Content-Length"] == str(len(SEGMENT))
            assert reply.headers["Content-Type"] == "video/iso.segment"
            assert reply.headers["Cache-Control"] == "public, max-age=31536000, immutable"
            assert reply.headers["ETag"] == strong_etag(SEGMENT)
            assert reply.headers["Accept-Ranges"] == "bytes"
            assert reply.headers["Access-Control-Allow-Origin"] == "*"
            assert "Content-Range" in reply.headers["Access-Control-Expose-Headers"]
            assert reply.headers["Date"].endswith(" GMT")
            assert reply.headers["Server"].startswith("Python/")
            assert "Connection" not in reply.headers
        assert sendfile_bytes() - sent_before == 3 * len(SEGMENT)
    finally:
        writer.close()


async def test_keep_alive_follows_the_http_version_and_connection_header(port: int) -> None:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        writer.write(request("/reels/1/360p_000.m4s", "1.0", Connection="keep-alive"))
        reply = await read_reply(reader)
        assert reply.status_line == "HTTP/1.0 200 OK"
        assert reply.headers["Connection"] == "keep-alive"
        assert reply.body == SEGMENT
        writer.write(request("/reels/1/360p_000.m4s", "1.1", Connection="close"))
        reply = await read_reply(reader)
        assert reply.headers["Connection"] == "close"
        assert reply.body == SEGMENT
        assert await asyncio.wait_for(reader.read(), 5) == b""  # the edge closed it
    finally:
        writer.close()
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        writer.write(request("/reels/1/360p_000.m4s", "1.0"))
        reply = await read_reply(reader)
        assert "Connection" not in reply.headers
        assert reply.body == SEGMENT
        assert await asyncio.wait_for(reader.read(), 5) == b""
    finally:
        writer.close()


async def test_pipelined_requests_are_answered_in_order_byte_for_byte(port: int) -> None:
    names = ["360p_000.m4s", "360p_001.m4s", "360p_000.m4s", "360p_002.m4s"] * 6
    expected = {"360p_000.m4s": SEGMENT, "360p_001.m4s": SMALL}
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        writer.write(b"".join(request(f"/reels/1/{name}") for name in names))
        await asyncio.sleep(0.2)  # let the edge fill the socket before anything is read
        for name in names:
            reply = await asyncio.wait_for(read_reply(reader), 10)
            if name in expected:
                assert (reply.status, reply.body) == (200, expected[name]), name
            else:
                assert reply.status == 404
    finally:
        writer.close()


async def test_ranges_and_conditional_requests_of_a_mapped_segment(port: int) -> None:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        writer.write(request("/reels/1/360p_000.m4s", Range="bytes=100000-"))
        reply = await read_reply(reader)
        assert reply.status_line == "HTTP/1.1 206 Partial Content"
        assert reply.headers["Content-Range"] == f"bytes 100000-{len(SEGMENT) - 1}/{len(SEGMENT)}"
        assert reply.body == SEGMENT[100000:]
        writer.write(request("/reels/1/360p_000.m4s", Range="bytes=0-9"))
        assert (await read_reply(reader)).body == SEGMENT[:10]
        writer.write(request("/reels/1/360p_000.m4s", Range=f"bytes={len(SEGMENT)}-"))
        reply = await read_reply(reader)
        assert reply.status == 416
        assert reply.headers["Content-Range"] == f"bytes */{len(SEGMENT)}"
        etag = strong_etag(SEGMENT)
        writer.write(request("/reels/1/360p_000.m4s", If_None_Match=etag))
        reply = await read_reply(reader)
        assert (reply.status, reply.body, reply.headers["ETag"]) == (304, b"", etag)
        writer.write(b"HEAD /reels/1/360p_000.m4s HTTP/1.1\r\nHost: edge\r\n\r\n")
        reply = await read_reply(reader, "HEAD")
        assert (reply.status, reply.headers["Content-Length"]) == (200, str(len(SEGMENT)))
        writer.write(request("/reels/1/360p_000.m4s"))
        assert (await read_reply(reader)).body == SEGMENT  # HEAD sent no body
    finally:
        writer.close()


async def test_the_reel_state_gate_applies_to_segments_sent_with_sendfile(port: int) -> None:
    verified = mint(KEYS, "k1", 7, int(time.time()) + 600, age_verified=True)
    plain = mint(KEYS, "k1", 7, int(time.time()) + 600)
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        path = f"/reels/{RESTRICTED_REEL}/360p_000.m4s"
        writer.write(request(path))
        assert (await read_reply(reader)).status == 403
        writer.write(request(path, Authorization=f"Bearer {plain}"))
        assert (await read_reply(reader)).status == 403
        writer.write(request(path, Authorization=f"Bearer {verified}"))
        reply = await read_reply(reader)
        assert (reply.status, reply.body) == (200, SEGMENT)
        assert reply.headers["Cache-Control"] == "private, max-age=31536000, immutable"
        assert reply.headers["Vary"] == "Authorization"
        writer.write(request(f"/reels/{REMOVED_REEL}/360p_000.m4s"))
        assert (await read_reply(reader)).status == 410
        writer.write(request("/reels/1/360p_000.m4s"))
        reply = await read_reply(reader)
        assert (reply.status, reply.body) == (200, SEGMENT)
        assert reply.headers["Cache-Control"].startswith("public")
        assert "Vary" not in reply.headers
    finally:
        writer.close()


def test_segments_of_64_kb_or_more_are_held_in_memory_files() -> None:
    assert isinstance(hold_body([SEGMENT], len(SEGMENT)), MappedBody)
