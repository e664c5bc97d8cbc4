"""The video path end to end through real processes: a clip uploaded to the real origin
(ffprobe, ffmpeg ladder, Cassandra), served by a real edge over HTTP, read by ffprobe and
ffmpeg from the edge."""

from __future__ import annotations

import json
import subprocess
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path

import grpc
import pytest

from protos import origin_pb2, origin_pb2_grpc
from tests.integration.conftest import ServiceProcess, free_port
from tests.integration.video_clips import make_clip

pytestmark = [pytest.mark.integration, pytest.mark.timeout(180)]


def _upload(stub: origin_pb2_grpc.OriginServiceStub, data: bytes) -> int:
    def requests() -> Iterator[origin_pb2.UploadRequest]:
        yield origin_pb2.UploadRequest(
            metadata=origin_pb2.UploadMetadata(
                creator_id=7, caption="e2e", total_bytes=len(data), filename="clip.mp4"
            )
        )
        for offset in range(0, len(data), 64 * 1024):
            yield origin_pb2.UploadRequest(chunk=data[offset : offset + 64 * 1024], offset=offset)

    response: origin_pb2.UploadResponse = stub.Upload(requests(), timeout=60)
    return response.reel_id


def _wait_published(stub: origin_pb2_grpc.OriginServiceStub, reel_id: int) -> origin_pb2.Reel:
    deadline = time.monotonic() + 120
    while True:
        reel: origin_pb2.Reel = stub.GetReel(origin_pb2.GetReelRequest(reel_id=reel_id), timeout=5)
        if reel.state == origin_pb2.REEL_STATE_PUBLISHED:
            return reel
        assert reel.state in (origin_pb2.REEL_STATE_UPLOADING, origin_pb2.REEL_STATE_PROCESSING), (
            reel
        )
        assert time.monotonic() < deadline, f"reel {reel_id} not published: {reel}"
        time.sleep(0.3)


def _get(url: str) -> tuple[int, bytes, dict[str, str]]:
    try:
        with urllib.request.urlopen(url, timeout=20) as response:
            return response.status, response.read(), dict(response.headers)
    except urllib.error.HTTPError as exc:
        with exc:
            return exc.code, exc.read(), dict(exc.headers)


def test_a_reel_uploaded_to_the_origin_plays_from_the_edge(
    keyspace: str,
    redis_port: int,
    tmp_path: Path,
    start_service: Callable[..., ServiceProcess],
) -> None:
    origin_address = f"127.0.0.1:{free_port()}"
    start_service(
        "origin",
        "origin",
        {
            "REELSTREAM_ORIGIN_GRPC_ADDRESS": origin_address,
            "REELSTREAM_ORIGIN_METRICS_PORT": "0",
            "REELSTREAM_ORIGIN_KEYSPACE": keyspace,
            "REELSTREAM_ORIGIN_MEDIA_DIR": str(tmp_path / "media"),
            "REELSTREAM_ORIGIN_FFMPEG_THREADS": "1",
            "REELSTREAM_ORIGIN_X264_PRESET": "ultrafast",
        },
        origin_address,
    )
    http_port = free_port()
    edge_address = f"127.0.0.1:{free_port()}"
    start_service(
        "edge",
        "edge-e2e",
        {
            "REELSTREAM_EDGE_NAME": f"edge-e2e-{keyspace}",
            "REELSTREAM_EDGE_GRPC_ADDRESS": edge_address,
            "REELSTREAM_EDGE_METRICS_PORT": "0",
            "REELSTREAM_EDGE_REDIS_URL": f"redis://127.0.0.1:{redis_port}/0",
            "REELSTREAM_EDGE_COUNTER_ADDRESSES": "127.0.0.1:1",
            "REELSTREAM_EDGE_VALIDATE_REELS": "false",
            "REELSTREAM_EDGE_ORIGIN_ADDRESS": origin_address,
            "REELSTREAM_EDGE_HTTP_ADDRESS": f"127.0.0.1:{http_port}",
        },
        edge_address,
    )
    clip = make_clip(tmp_path / "portrait.mp4", 360, 640, 5)
    with grpc.insecure_channel(origin_address) as channel:
        stub = origin_pb2_grpc.OriginServiceStub(channel)
        reel_id = _upload(stub, clip.read_bytes())
        _wait_published(stub, reel_id)
        base = f"http://127.0.0.1:{http_port}/reels/{reel_id}"

        status, master, headers = _get(f"{base}/master.m3u8")
        assert status == 200, master
        assert headers["Content-Type"] == "application/vnd.apple.mpegurl"
        variants = [
            line for line in master.decode().splitlines() if line and not line.startswith("#")
        ]
        assert variants, master
        status, playlist, _ = _get(f"{base}/{variants[0]}")
        assert status == 200
        segment = next(line for line in playlist.decode().splitlines() if line.endswith(".m4s"))
        status, body, headers = _get(f"{base}/{segment}")
        assert status == 200
        assert headers["Cache-Control"] == "public, max-age=31536000, immutable"
        direct = b"".join(
            chunk.data
            for chunk in stub.GetSegment(
                origin_pb2.GetSegmentRequest(reel_id=reel_id, name=segment), timeout=10
            )
        )
        assert body == direct

    assert _get(f"http://127.0.0.1:{http_port}/reels/{reel_id + 10_000}/master.m3u8")[0] == 404
    probe = subprocess.run(
        ["ffprobe", "-v", "error", "-show_programs", "-of", "json", f"{base}/master.m3u8"],
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    assert len(json.loads(probe.stdout)["programs"]) == len(variants)
    copy = subprocess.run(
        ["ffmpeg", "-v", "error", "-i", f"{base}/master.m3u8", "-map", "0:p:0", "-c", "copy",
         "-f", "null", "-"],
        capture_output=True,
        text=True,
        timeout=60,
    )  # fmt: skip
    assert copy.returncode == 0, copy.stderr
