"""HLS at the edge over real HTTP: a real edge process in front of a fake origin serving an
ffmpeg-made ladder. Headers, ETag/304, Range, CORS, error statuses, coalescing of 1,000
concurrent misses, prefetch, purge, /resolve, and real clients (ffprobe, ffmpeg)."""

from __future__ import annotations

import asyncio
import json
import re
import socket
import subprocess
import time
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path

import aiohttp
import grpc
import pytest

from protos import edge_pb2, edge_pb2_grpc
from tests.integration.conftest import (
    ServiceProcess,
    free_port,
    start_process,
    stop_process,
    wait_serving,
)
from tests.integration.fake_origin_media import (
    PROCESSING_REEL,
    REMOVED_REEL,
    FakeOriginMedia,
    make_hls_ladder,
    start_fake_origin,
)

pytestmark = pytest.mark.integration


def edge_http_env(
    name: str, redis_port: int, origin: str, http_port: int, metrics_port: int
) -> dict[str, str]:
    return {
        "REELSTREAM_EDGE_NAME": name,
        "REELSTREAM_EDGE_GRPC_ADDRESS": f"127.0.0.1:{free_port()}",
        "REELSTREAM_EDGE_METRICS_PORT": str(metrics_port),
        "REELSTREAM_EDGE_REDIS_URL": f"redis://127.0.0.1:{redis_port}/0",
        "REELSTREAM_EDGE_COUNTER_ADDRESSES": "127.0.0.1:1",
        "REELSTREAM_EDGE_VALIDATE_REELS": "false",
        "REELSTREAM_EDGE_ORIGIN_ADDRESS": origin,
        "REELSTREAM_EDGE_HTTP_ADDRESS": f"127.0.0.1:{http_port}",
        "REELSTREAM_EDGE_SEGMENT_CACHE_BYTES": str(64 * 1024 * 1024),
        "REELSTREAM_EDGE_EDGE_HTTP_URLS": f"{name}=http://127.0.0.1:{http_port},"
        f"edge-far=http://127.0.0.1:{http_port},edge-dead=http://127.0.0.1:1",
        "REELSTREAM_EDGE_REGION_LATENCIES": (
            f"eu:{name}=20,eu:edge-dead=5,us:{name}=80,us:edge-far=30,ap:edge-dead=9"
        ),
        "REELSTREAM_EDGE_PEER_PROBE_INTERVAL_S": "0.5",
        # The fake ladder's rungs peak at 730 and 400 kbps: save-data keeps the lower one.
        "REELSTREAM_EDGE_SAVE_DATA_BANDWIDTH_BPS": "500000",
    }


class EdgeUnderTest:
    def __init__(self, process: ServiceProcess, http_port: int, metrics_port: int) -> None:
        self.process = process
        self.base = f"http://127.0.0.1:{http_port}"
        self.metrics_url = f"http://127.0.0.1:{metrics_port}/metrics"
        self.grpc_address = process.env["REELSTREAM_EDGE_GRPC_ADDRESS"]

    def url(self, reel_id: int | str, name: str) -> str:
        return f"{self.base}/reels/{reel_id}/{name}"

    def metric(self, name: str, labels: str = "") -> float:
        with urllib.request.urlopen(self.metrics_url, timeout=5) as response:
            text = response.read().decode()
        pattern = re.compile(rf"^{re.escape(name)}{re.escape(labels)} ([0-9.e+]+)$", re.M)
        return sum(float(m[1]) for m in pattern.finditer(text))


@pytest.fixture(scope="module")
def ladder(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_hls_ladder(tmp_path_factory.mktemp("ladder"))


@pytest.fixture(scope="module")
def fake_origin(ladder: Path) -> Iterator[tuple[FakeOriginMedia, str]]:
    servicer = FakeOriginMedia(ladder)
    server, address = start_fake_origin(servicer)
    yield servicer, address
    server.stop(grace=None)


@pytest.fixture(scope="module")
def edge(
    fake_origin: tuple[FakeOriginMedia, str],
    redis_port: int,
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[EdgeUnderTest]:
    http_port, metrics_port = free_port(), free_port()
    env = edge_http_env("edge-hls", redis_port, fake_origin[1], http_port, metrics_port)
    process = start_process(
        "edge", "edge-hls", env, env["REELSTREAM_EDGE_GRPC_ADDRESS"], tmp_path_factory.mktemp("log")
    )
    wait_serving(process)
    yield EdgeUnderTest(process, http_port, metrics_port)
    stop_process(process)
    assert process.process.returncode == 0, process.log_tail()


@pytest.fixture
async def http() -> Iterator[aiohttp.ClientSession]:  # type: ignore[misc]
    async with aiohttp.ClientSession(
        connector=aiohttp.TCPConnector(limit=0), timeout=aiohttp.ClientTimeout(total=60)
    ) as session:
        yield session


def poll(check: Callable[[], bool], timeout_s: float, what: str) -> None:
    deadline = time.monotonic() + timeout_s
    while not check():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.05)


async def test_master_playlist_is_served_with_playlist_headers(
    edge: EdgeUnderTest, http: aiohttp.ClientSession
) -> None:
    async with http.get(edge.url(1, "master.m3u8")) as response:
        body = await response.text()
        assert response.status == 200
        assert response.headers["Content-Type"] == "application/vnd.apple.mpegurl"
        assert response.headers["Cache-Control"].startswith("public, max-age=2")
        assert "stale-while-revalidate" in response.headers["Cache-Control"]
        assert response.headers["Access-Control-Allow-Origin"] == "*"
        assert "Save-Data" in response.headers["Vary"]
        assert response.headers["ETag"].startswith('"')
    assert body.startswith("#EXTM3U")
    assert "360p.m3u8" in body
    assert "240p.m3u8" in body
    assert '#EXT-X-MEDIA:TYPE=AUDIO,GROUP-ID="group_aud"' in body


async def test_master_offers_fewer_rungs_to_small_screens_and_save_data(
    edge: EdgeUnderTest, http: aiohttp.ClientSession
) -> None:
    async with http.get(edge.url(1, "master.m3u8"), params={"max_height": "500"}) as response:
        capped = await response.text()
    assert "240p.m3u8" in capped
    assert "360p.m3u8" not in capped
    async with http.get(edge.url(1, "master.m3u8"), headers={"Save-Data": "on"}) as response:
        saving = await response.text()
    assert "360p.m3u8" not in saving
    async with http.get(edge.url(1, "master.m3u8"), params={"max_height": "x"}) as response:
        assert response.status == 400


async def test_files_are_served_byte_for_byte_with_immutable_segments(
    edge: EdgeUnderTest, http: aiohttp.ClientSession, ladder: Path
) -> None:
    for name in ("360p.m3u8", "360p_init.mp4", "360p_001.m4s", "audio_000.m4s"):
        async with http.get(edge.url(1, name)) as response:
            assert response.status == 200, name
            assert await response.read() == (ladder / name).read_bytes()
            assert response.headers["Accept-Ranges"] == "bytes"
            if name.endswith(".m4s"):
                assert response.headers["Cache-Control"] == "public, max-age=31536000, immutable"
                assert response.headers["Content-Type"] == "video/iso.segment"
            elif name.endswith(".mp4"):
                assert response.headers["Content-Type"] == "video/mp4"


async def test_a_matching_etag_gets_304_without_a_body(
    edge: EdgeUnderTest, http: aiohttp.ClientSession
) -> None:
    for name in ("360p_000.m4s", "360p.m3u8", "master.m3u8"):
        async with http.get(edge.url(1, name)) as response:
            etag = response.headers["ETag"]
        async with http.get(edge.url(1, name), headers={"If-None-Match": etag}) as response:
            assert response.status == 304, name
            assert await response.read() == b""
            assert response.headers["ETag"] == etag
        async with http.get(edge.url(1, name), headers={"If-None-Match": '"other"'}) as response:
            assert response.status == 200


async def test_range_requests_get_206_and_416(
    edge: EdgeUnderTest, http: aiohttp.ClientSession, ladder: Path
) -> None:
    data = (ladder / "360p_002.m4s").read_bytes()
    url = edge.url(1, "360p_002.m4s")
    async with http.get(url, headers={"Range": "bytes=0-99"}) as response:
        assert response.status == 206
        assert response.headers["Content-Range"] == f"bytes 0-99/{len(data)}"
        assert await response.read() == data[:100]
        etag = response.headers["ETag"]
    async with http.get(url, headers={"Range": "bytes=-10"}) as response:
        assert response.status == 206
        assert await response.read() == data[-10:]
    async with http.get(url, headers={"Range": f"bytes={len(data)}-"}) as response:
        assert response.status == 416
        assert response.headers["Content-Range"] == f"bytes */{len(data)}"
    async with http.get(url, headers={"Range": "bytes=0-9", "If-Range": etag}) as response:
        assert response.status == 206
    async with http.get(url, headers={"Range": "bytes=0-9", "If-Range": '"old"'}) as response:
        assert response.status == 200
        assert len(await response.read()) == len(data)


async def test_head_sends_headers_only(edge: EdgeUnderTest, http: aiohttp.ClientSession) -> None:
    async with http.head(edge.url(1, "360p_000.m4s")) as response:
        assert response.status == 200
        assert int(response.headers["Content-Length"]) > 1000
        assert await response.read() == b""


async def test_cors_preflight_allows_browser_players(
    edge: EdgeUnderTest, http: aiohttp.ClientSession
) -> None:
    headers = {
        "Origin": "https://player.example",
        "Access-Control-Request-Method": "GET",
        "Access-Control-Request-Headers": "range",
    }
    async with http.options(edge.url(1, "360p_000.m4s"), headers=headers) as response:
        assert response.status == 204
        assert response.headers["Access-Control-Allow-Origin"] == "*"
        assert "GET" in response.headers["Access-Control-Allow-Methods"]
        assert "range" in response.headers["Access-Control-Allow-Headers"].lower()
        assert int(response.headers["Access-Control-Max-Age"]) > 0
    async with http.get(edge.url(1, "360p_000.m4s"), headers={"Origin": "x"}) as response:
        assert "Content-Range" in response.headers["Access-Control-Expose-Headers"]


@pytest.mark.parametrize(
    ("path", "status"),
    [
        ("/reels/1000/master.m3u8", 404),
        ("/reels/1/9999p.m3u8", 404),
        ("/reels/1/360p_099.m4s", 404),
        (f"/reels/{REMOVED_REEL}/master.m3u8", 410),
        (f"/reels/{REMOVED_REEL}/360p_000.m4s", 410),
        (f"/reels/{PROCESSING_REEL}/master.m3u8", 404),
        ("/reels/abc/master.m3u8", 400),
        ("/reels/0/master.m3u8", 400),
        ("/reels/1/evil.sh", 400),
        ("/reels/1/360p/../x.m4s", 400),
        ("/reels/1/360p_000.ts", 400),
    ],
)
async def test_error_statuses(
    edge: EdgeUnderTest, http: aiohttp.ClientSession, path: str, status: int
) -> None:
    async with http.get(edge.base + path) as response:
        assert response.status == status, await response.text()
        if path.startswith(f"/reels/{PROCESSING_REEL}/"):
            assert "Retry-After" in response.headers


async def test_a_thousand_concurrent_requests_for_an_uncached_segment_make_one_origin_fetch(
    edge: EdgeUnderTest, http: aiohttp.ClientSession, fake_origin: tuple[FakeOriginMedia, str]
) -> None:
    servicer = fake_origin[0]
    reel_id, name = 100, "360p_001.m4s"
    expected = (servicer.folder / name).read_bytes()
    coalesced_before = edge.metric("edge_cache_coalesced_waits_total")
    servicer.segment_delay_s = 1.5  # the fetch is still in flight when the burst arrives

    async def fetch() -> bytes:
        async with http.get(edge.url(reel_id, name)) as response:
            assert response.status == 200
            return await response.read()

    try:
        bodies = await asyncio.gather(*(fetch() for _ in range(1000)))
    finally:
        servicer.segment_delay_s = 0.0
    assert all(body == expected for body in bodies)
    assert servicer.count(reel_id, name) == 1
    coalesced = edge.metric("edge_cache_coalesced_waits_total") - coalesced_before
    print(f"1,000 concurrent requests: 1 origin fetch, {coalesced:.0f} coalesced waits")
    assert coalesced > 0


def test_the_next_segment_is_prefetched(
    edge: EdgeUnderTest, fake_origin: tuple[FakeOriginMedia, str]
) -> None:
    servicer = fake_origin[0]
    with urllib.request.urlopen(edge.url(101, "360p_000.m4s"), timeout=10) as response:
        assert response.status == 200
    poll(lambda: servicer.count(101, "360p_001.m4s") == 1, 10, "prefetch of 360p_001.m4s")
    with urllib.request.urlopen(edge.url(101, "360p_001.m4s"), timeout=10) as response:
        assert response.status == 200
    assert servicer.count(101, "360p_001.m4s") == 1


def test_purge_reel_drops_every_cached_file_of_the_reel(
    edge: EdgeUnderTest, fake_origin: tuple[FakeOriginMedia, str]
) -> None:
    servicer = fake_origin[0]
    for name in ("master.m3u8", "240p_init.mp4", "240p_002.m4s"):
        with urllib.request.urlopen(edge.url(102, name), timeout=10) as response:
            assert response.status == 200
    with grpc.insecure_channel(edge.grpc_address) as channel:
        stub = edge_pb2_grpc.EdgeServiceStub(channel)
        purged = stub.PurgeReel(edge_pb2.PurgeReelRequest(reel_id=102, reason="test"), timeout=5)
    assert purged.objects_purged >= 3
    assert purged.bytes_purged > 0
    with urllib.request.urlopen(edge.url(102, "240p_002.m4s"), timeout=10) as response:
        assert response.status == 200
    assert servicer.count(102, "240p_002.m4s") == 2


def test_resolve_answers_the_nearest_healthy_edge(edge: EdgeUnderTest) -> None:
    def resolve(query: str) -> tuple[int, dict[str, object]]:
        try:
            with urllib.request.urlopen(f"{edge.base}/resolve{query}", timeout=5) as response:
                return response.status, json.loads(response.read())
        except urllib.error.HTTPError as exc:
            with exc:
                return exc.code, json.loads(exc.read())

    # edge-far shares this edge's URL, so it turns healthy after its first probe.
    poll(lambda: resolve("?region=us")[1].get("edge") == "edge-far", 10, "edge-far healthy")
    status, answer = resolve("?region=eu")  # edge-dead is nearer but never answers
    assert (status, answer["edge"]) == (200, "edge-hls")
    assert answer["latency_ms"] == 20.0
    assert resolve("?region=ap")[0] == 503
    assert resolve("?region=mars")[0] == 404
    assert resolve("")[0] == 400
    with urllib.request.urlopen(f"{edge.base}/healthz", timeout=5) as response:
        assert response.status == 200


def test_ffprobe_and_ffmpeg_read_the_stream_from_the_edge(edge: EdgeUnderTest) -> None:
    master = edge.url(103, "master.m3u8")
    probe = subprocess.run(
        ["ffprobe", "-v", "error", "-show_programs", "-of", "json", master],
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    programs = json.loads(probe.stdout)["programs"]
    bitrates = sorted(int(p["tags"]["variant_bitrate"]) for p in programs)
    assert len(bitrates) == 2
    copy = subprocess.run(
        ["ffmpeg", "-v", "error", "-i", master, "-map", "0:p:0", "-c", "copy", "-f", "null", "-"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert copy.returncode == 0, copy.stderr


def test_an_unreachable_origin_gets_503_with_retry_after(
    redis_port: int, start_service: Callable[..., ServiceProcess]
) -> None:
    http_port = free_port()
    env = edge_http_env("edge-orphan", redis_port, f"127.0.0.1:{free_port()}", http_port, 0)
    env["REELSTREAM_EDGE_MEDIA_TIMEOUT_S"] = "2"
    start_service("edge", "edge-orphan", env, env["REELSTREAM_EDGE_GRPC_ADDRESS"])
    request = urllib.request.Request(f"http://127.0.0.1:{http_port}/reels/1/master.m3u8")
    with pytest.raises(urllib.error.HTTPError) as failure:
        urllib.request.urlopen(request, timeout=10)
    with failure.value as error:
        assert error.code == 503
        assert error.headers["Retry-After"] == "2"


async def test_large_segments_go_out_by_sendfile_whole_and_in_ranges(
    edge: EdgeUnderTest, http: aiohttp.ClientSession, ladder: Path
) -> None:
    """Sendfile takes what the socket accepts at once and the write path the rest, so how
    much of one response the kernel sent depends on the socket's state at that moment (a
    CI run once saw a keep-alive response go wholly by the write path). What must hold:
    the bytes are right, the counter never counts more than the response's body, and
    whole and ranged responses both go by sendfile when the socket lets them."""
    data = (ladder / "360p_001.m4s").read_bytes()
    assert len(data) > 2 * 64 * 1024, "the clip must have segments large enough for sendfile"
    for range_header, status, expected in ((None, 200, data), ("bytes=1000-", 206, data[1000:])):
        by_sendfile = []
        for _ in range(5):
            before = edge.metric("edge_http_sendfile_bytes_total")
            headers = {"Range": range_header} if range_header else {}
            async with http.get(edge.url(1, "360p_001.m4s"), headers=headers) as response:
                assert response.status == status
                assert await response.read() == expected
            by_sendfile.append(edge.metric("edge_http_sendfile_bytes_total") - before)
            assert 0 <= by_sendfile[-1] <= len(expected), by_sendfile
            if by_sendfile[-1] > 0:
                break
        assert by_sendfile[-1] > 0, f"{status}: no byte went by sendfile in {by_sendfile}"


def test_a_slow_reader_gets_every_byte_on_a_kept_alive_connection(
    edge: EdgeUnderTest, ladder: Path
) -> None:
    """A full socket stops sendfile part-way; the transport must write the rest, in order,
    and the next response on the connection must start where the previous one ended.
    The requests are pipelined: more than the kernel's largest send buffer (4 MB) waits
    for a reader that has not started reading."""
    files = ("360p_000.m4s", "360p_001.m4s", "360p_002.m4s")
    names = [files[i % len(files)] for i in range(48)]
    port = int(edge.base.rsplit(":", 1)[1])
    sent_by_sendfile = edge.metric("edge_http_sendfile_bytes_total")
    with socket.socket() as client:
        client.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        client.connect(("127.0.0.1", port))
        for name in names:
            request = f"GET /reels/1/{name} HTTP/1.1\r\nHost: edge\r\n\r\n"
            client.sendall(request.encode())
        time.sleep(1.0)  # let the edge fill the socket and fall back to its write path
        received = bytearray()
        expected = [(ladder / name).read_bytes() for name in names]
        client.settimeout(10)
        for body in expected:
            head = _read_until(client, received, b"\r\n\r\n")
            assert head.startswith(b"HTTP/1.1 200"), head[:100]
            length = int(re.search(rb"Content-Length: (\d+)", head, re.I)[1])  # type: ignore[index]
            assert length == len(body)
            while len(received) < length:
                chunk = client.recv(8192)
                assert chunk, "connection closed mid-body"
                received += chunk
            assert bytes(received[:length]) == body
            del received[:length]
    sent_by_sendfile = edge.metric("edge_http_sendfile_bytes_total") - sent_by_sendfile
    assert 0 < sent_by_sendfile < sum(map(len, expected)), "the write path took no part"


def _read_until(client: socket.socket, buffer: bytearray, marker: bytes) -> bytes:
    while marker not in buffer:
        chunk = client.recv(8192)
        assert chunk, "connection closed before the headers"
        buffer += chunk
    end = buffer.index(marker) + len(marker)
    head = bytes(buffer[:end])
    del buffer[:end]
    return head
