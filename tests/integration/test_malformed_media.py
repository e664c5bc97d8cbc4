"""Malformed media, beyond tests/integration/test_origin_video.py's corpus (empty, random
bytes, truncated MP4, image, audio only, absurd dimensions, too long, too large): files
that try to make ffmpeg reach elsewhere (an HLS playlist pointing at a local HTTP server
and at local files, an ffconcat script), a fake MP4 header over junk and an animated GIF.
Each gets INVALID_ARGUMENT with a reason, no connection leaves the origin, no temporary
file survives, and the origin stays SERVING."""

from __future__ import annotations

import random
import socket
import subprocess
from collections.abc import Callable
from pathlib import Path

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc

from protos import origin_pb2, origin_pb2_grpc
from tests.integration.conftest import ServiceProcess, free_port
from tests.integration.video_clips import make_clip

pytestmark = [pytest.mark.integration, pytest.mark.timeout(180)]


def animated_gif(path: Path) -> bytes:
    subprocess.run(
        [
            *("ffmpeg", "-v", "error", "-y", "-f", "lavfi", "-i", "testsrc2=size=320x240:rate=5"),
            *("-t", "1", str(path)),
        ],
        check=True,
        timeout=30,
    )
    return path.read_bytes()


def test_media_that_reaches_elsewhere_or_lies_is_refused_and_leaves_nothing(
    cassandra: str,
    keyspace: str,
    tmp_path: Path,
    start_service: Callable[..., ServiceProcess],
) -> None:
    address = f"127.0.0.1:{free_port()}"
    media_root = tmp_path / "media"
    start_service(
        "origin",
        "origin",
        {
            "REELSTREAM_ORIGIN_GRPC_ADDRESS": address,
            "REELSTREAM_ORIGIN_METRICS_PORT": "0",
            "REELSTREAM_ORIGIN_KEYSPACE": keyspace,
            "REELSTREAM_ORIGIN_MEDIA_DIR": str(media_root),
            "REELSTREAM_ORIGIN_FFMPEG_THREADS": "1",
        },
        address,
    )
    good = make_clip(tmp_path / "good.mp4", 320, 240, 1).read_bytes()
    (tmp_path / "secret.mp4").write_bytes(good)
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(8)
    listener.setblocking(False)
    port = listener.getsockname()[1]
    cases = {
        "hls to a local http server": b"#EXTM3U\n#EXT-X-TARGETDURATION:2\n#EXTINF:2,\n"
        + f"http://127.0.0.1:{port}/seg.ts\n#EXT-X-ENDLIST\n".encode(),
        "hls to a local file": b"#EXTM3U\n#EXT-X-TARGETDURATION:2\n#EXTINF:2,\n"
        + f"file:{tmp_path / 'secret.mp4'}\n#EXT-X-ENDLIST\n".encode(),
        "ffconcat script": f"ffconcat version 1.0\nfile '{tmp_path / 'secret.mp4'}'\n".encode(),
        "mp4 header over junk": good[:64] + random.Random(9).randbytes(50_000),
        "animated gif": animated_gif(tmp_path / "anim.gif"),
    }
    with grpc.insecure_channel(address) as channel:
        origin = origin_pb2_grpc.OriginServiceStub(channel)
        for case, data in cases.items():
            requests = [
                origin_pb2.UploadRequest(
                    metadata=origin_pb2.UploadMetadata(creator_id=1, total_bytes=len(data))
                ),
                origin_pb2.UploadRequest(chunk=data, offset=0),
            ]
            with pytest.raises(grpc.RpcError) as error:
                origin.Upload(iter(requests), timeout=60)
            assert error.value.code() == grpc.StatusCode.INVALID_ARGUMENT, case
            details = error.value.details() or ""
            assert details, case
            assert str(tmp_path) not in details, (case, "no path in messages", details)
        with pytest.raises(BlockingIOError):
            listener.accept()  # nobody connected: the probe never followed the URL
        listener.close()
        leftovers = [
            p for folder in ("uploads", "sources", "work") for p in (media_root / folder).rglob("*")
        ]
        assert leftovers == []
        status = health_pb2_grpc.HealthStub(channel).Check(
            health_pb2.HealthCheckRequest(), timeout=5
        )
        assert status.status == health_pb2.HealthCheckResponse.SERVING
