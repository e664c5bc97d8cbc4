"""Bad-input suite, HTTP side: the edge's HLS endpoints (edge/hls_http.py, /resolve,
/healthz) fuzzed with malformed paths, methods, query parameters, client hints, Range,
If-Range and If-None-Match values, against a real edge serving a real published reel.
Bad input must get a 4xx (never a 5xx), and the edge must stay up with bounded memory."""

from __future__ import annotations

import http.client
import socket
import string
import time
import urllib.parse
from collections.abc import Iterator
from pathlib import Path

import grpc
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from protos import origin_pb2, origin_pb2_grpc
from tests.integration.fuzz_stack import FuzzBudget, FuzzStack, fuzz_stack_fixture
from tests.integration.video_clips import make_clip

pytestmark = [pytest.mark.integration, pytest.mark.timeout(600)]

BUDGET = FuzzBudget.from_env()
MAX_RSS_GROWTH_BYTES = 200 * 1024 * 1024


class PublishedReel:
    def __init__(self, stack: FuzzStack, reel_id: int) -> None:
        self.stack = stack
        self.reel_id = reel_id


@pytest.fixture(scope="module")
def reel(
    cassandra: str, redis_port: int, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[PublishedReel]:
    log_dir = tmp_path_factory.mktemp("fuzz-http")
    for stack in fuzz_stack_fixture(log_dir, cassandra, redis_port):
        yield PublishedReel(stack, upload_clip(stack, log_dir))


def upload_clip(stack: FuzzStack, folder: Path) -> int:
    data = make_clip(folder / "clip.mp4", 320, 240, 1.5).read_bytes()
    origin = origin_pb2_grpc.OriginServiceStub(stack.channel("origin"))
    requests = [
        origin_pb2.UploadRequest(
            metadata=origin_pb2.UploadMetadata(creator_id=1, total_bytes=len(data))
        ),
        origin_pb2.UploadRequest(chunk=data, offset=0),
    ]
    reel_id = origin.Upload(iter(requests), timeout=60).reel_id
    deadline = time.monotonic() + 120
    while True:
        state = origin.GetReel(origin_pb2.GetReelRequest(reel_id=reel_id), timeout=5).state
        if state == origin_pb2.REEL_STATE_PUBLISHED:
            return reel_id
        assert state in (origin_pb2.REEL_STATE_UPLOADING, origin_pb2.REEL_STATE_PROCESSING)
        assert time.monotonic() < deadline, "reel not published in time"
        time.sleep(0.3)


def request(
    address: str, method: str, target: str, headers: dict[str, str]
) -> tuple[int, http.client.HTTPMessage]:
    host, port = address.rsplit(":", 1)
    connection = http.client.HTTPConnection(host, int(port), timeout=15)
    try:
        connection.putrequest(method, target, skip_host=False, skip_accept_encoding=True)
        for name, value in headers.items():
            connection.putheader(name, value)
        connection.endheaders()
        response = connection.getresponse()
        response.read()
        return response.status, response.headers
    finally:
        connection.close()


_SAFE = "/%?&=;:@!$'()*+,~-._"
_header_text = st.text(
    st.characters(min_codepoint=32, max_codepoint=126), max_size=40
) | st.sampled_from(["", "1e309", "nan", "-inf", "-1", "0", str(2**64), "9" * 400, "é"])
_range_text = (
    st.text(alphabet="bytes=-0123456789, ;", max_size=30)
    | st.builds(lambda a, b: f"bytes={a}-{b}", st.integers(-5, 2**70), st.integers(-5, 2**70))
    | st.sampled_from(["bytes=-0", "bytes=0-", "bytes=5-1", "items=0-1", "bytes=0-0,1-1"])
)
_names = st.sampled_from(
    [
        "master.m3u8",
        "360p.m3u8",
        "240p.m3u8",
        "360p_init.mp4",
        "360p_000.m4s",
        "240p_001.m4s",
        "360p_999.m4s",
        "../../etc/passwd",
        "%2e%2e%2fsecret",
        "master.m3u8%00.mp4",
        "",
        "a" * 3000,
    ]
) | st.text(string.ascii_letters + string.digits + "._-%/", max_size=40)


@st.composite
def hostile_requests(draw: st.DrawFn, reel_id: int) -> tuple[str, str, dict[str, str]]:
    reel_text = draw(
        st.sampled_from([str(reel_id), "0", "-1", "01", str(2**64), str(2**63), "abc", "1e3"])
        | st.integers(0, 2**64 - 1).map(str)
    )
    path = draw(
        st.one_of(
            st.builds(lambda n: f"/reels/{reel_text}/{n}", _names),
            st.sampled_from(["/", "/reels", "/reels/", "//reels//1//master.m3u8", "/healthz"]),
            st.text(max_size=60).map(lambda t: "/" + urllib.parse.quote(t, safe=_SAFE)),
            st.builds(lambda r: f"/resolve?region={urllib.parse.quote(r)}", st.text(max_size=80)),
        )
    )
    query = draw(
        st.dictionaries(
            st.sampled_from(["max_height", "save_data", "downlink_kbps", "x"]),
            _header_text,
            max_size=3,
        )
    )
    if query and "?" not in path:
        path += "?" + urllib.parse.urlencode(query)
    headers = draw(
        st.dictionaries(
            st.sampled_from(
                [
                    "Range",
                    "If-Range",
                    "If-None-Match",
                    "Save-Data",
                    "Sec-CH-Viewport-Height",
                    "Viewport-Height",
                    "Sec-CH-DPR",
                    "Downlink",
                    "Origin",
                ]
            ),
            _header_text,
            max_size=5,
        )
    )
    if draw(st.booleans()):
        headers["Range"] = draw(_range_text)
    method = draw(st.sampled_from(["GET", "GET", "GET", "HEAD", "OPTIONS", "POST", "DELETE"]))
    return method, path, headers


def test_malformed_http_requests_get_4xx_and_the_edge_stays_up(reel: PublishedReel) -> None:
    stack = reel.stack
    before = stack.rss_bytes()["edge"]
    statuses: dict[int, int] = {}
    examples = BUDGET.examples * 20

    @settings(
        max_examples=examples,
        deadline=None,
        derandomize=examples <= 400,
        database=None,
        suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
    )
    @given(case=hostile_requests(reel.reel_id))
    def check(case: tuple[str, str, dict[str, str]]) -> None:
        method, path, headers = case
        status, _ = request(stack.http_address, method, path, headers)
        statuses[status] = statuses.get(status, 0) + 1
        assert status < 500, f"{method} {path} {headers} -> {status}"

    check()
    print("HTTP statuses:", dict(sorted(statuses.items())))
    assert any(200 <= s < 300 for s in statuses), "the published reel was never served"
    stack.assert_healthy()
    growth = stack.rss_bytes()["edge"] - before
    assert growth < MAX_RSS_GROWTH_BYTES, f"edge grew by {growth >> 20} MiB"


def test_ranges_of_a_real_segment_are_206_or_416_never_5xx(reel: PublishedReel) -> None:
    path = f"/reels/{reel.reel_id}/360p_init.mp4"
    status, headers = request(reel.stack.http_address, "GET", path, {})
    if status == 404:  # the ladder of a 240-line source has no 360p rung
        path = f"/reels/{reel.reel_id}/240p_init.mp4"
        status, headers = request(reel.stack.http_address, "GET", path, {})
    assert status == 200
    size = int(headers["Content-Length"])
    cases = {
        "bytes=0-0": 206,
        f"bytes={size - 1}-": 206,
        "bytes=-1": 206,
        f"bytes={size}-": 416,
        f"bytes={2**70}-": 200,  # more digits than any size: ignored, like other junk
        "bytes=-0": 416,
        "bytes=5-1": 200,
        "bytes=abc": 200,
    }
    for value, expected in cases.items():
        status, _ = request(reel.stack.http_address, "GET", path, {"Range": value})
        assert status == expected, (value, status)


def test_garbage_on_the_http_port_is_answered_400_or_closed(reel: PublishedReel) -> None:
    host, port = reel.stack.http_address.rsplit(":", 1)
    for garbage in (
        b"\x00\xff\x16\x03\x01garbage\r\n\r\n",
        b"GET /reels/1/master.m3u8 HTTP/9.9\r\n\r\n",
        b"GET " + b"/a" * 10_000 + b" HTTP/1.1\r\nHost: x\r\n\r\n",
        b"GET / HTTP/1.1\r\n" + b"X-Long: " + b"a" * 100_000 + b"\r\n\r\n",
        b"GET / HTTP/1.1\r\nHost: x\r\nContent-Length: -5\r\n\r\n",
    ):
        with socket.create_connection((host, int(port)), timeout=10) as sock:
            sock.sendall(garbage)
            reply = b""
            try:
                while chunk := sock.recv(65536):
                    reply += chunk
                    if b"\r\n\r\n" in reply:
                        break
            except (ConnectionResetError, TimeoutError):
                pass
        status_line = reply.split(b"\r\n", 1)[0]
        assert not status_line or status_line.split()[1].startswith(b"4"), (garbage[:40], reply)
    reel.stack.assert_healthy()
    with grpc.insecure_channel(reel.stack.processes["edge"].address) as channel:
        grpc.channel_ready_future(channel).result(timeout=5)
