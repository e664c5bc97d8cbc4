"""A moderation stack for the console tests: two moderation processes on one keyspace, an
origin (moderation through the first, moderator console on), an edge that validates reels
and knows the user-token keys; and a clip uploaded with a caption that the watchlist holds
for review (plus markup, to check escaping)."""

from __future__ import annotations

import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import grpc

from protos import origin_pb2, origin_pb2_grpc
from tests.integration.conftest import REPO_ROOT, ServiceProcess, free_port, origin_env
from tests.integration.moderation_clips import make_original

MODERATOR, PASSWORD = "alice", "correct horse battery staple"
WATCHWORD = "holdme"
HOSTILE_CAPTION = f'<script>alert("x")</script><img src=x onerror=alert(1)> {WATCHWORD}'
TOKEN_KEYS = "k1:console-test-secret-0123456789"
CREATOR = 7


@dataclass(frozen=True)
class ConsoleStack:
    moderation: tuple[str, str]
    """gRPC addresses of the two moderation processes (the origin uses the first)."""
    origin: str
    console_url: str
    edge_http: str
    held_reel: int


def write_moderators(path: Path) -> Path:
    """The moderator file, written by the documented command."""
    subprocess.run(
        [sys.executable, "-m", "origin.console_passwords", str(path), MODERATOR, "--stdin"],
        input=PASSWORD + "\n",
        text=True,
        check=True,
        cwd=REPO_ROOT,
        timeout=60,
        capture_output=True,
    )
    return path


def upload(stub: origin_pb2_grpc.OriginServiceStub, path: Path, caption: str) -> int:
    data = path.read_bytes()

    def requests() -> Iterator[origin_pb2.UploadRequest]:
        yield origin_pb2.UploadRequest(
            metadata=origin_pb2.UploadMetadata(
                creator_id=CREATOR, caption=caption, hashtags=["#test"], total_bytes=len(data),
                filename=path.name,
            )
        )  # fmt: skip
        for offset in range(0, len(data), 64 * 1024):
            yield origin_pb2.UploadRequest(chunk=data[offset : offset + 64 * 1024], offset=offset)

    response: origin_pb2.UploadResponse = stub.Upload(requests(), timeout=60)
    return response.reel_id


def wait_state(
    stub: origin_pb2_grpc.OriginServiceStub, reel_id: int, *states: int
) -> origin_pb2.Reel:
    deadline = time.monotonic() + 150
    while True:
        reel: origin_pb2.Reel = stub.GetReel(origin_pb2.GetReelRequest(reel_id=reel_id), timeout=5)
        if reel.state in states:
            return reel
        assert time.monotonic() < deadline, f"reel {reel_id} never reached {states}: {reel}"
        time.sleep(0.2)


def start_console_stack(
    keyspace: str,
    redis_port: int,
    tmp_path: Path,
    start_service: Callable[..., ServiceProcess],
) -> ConsoleStack:
    moderation = (f"127.0.0.1:{free_port()}", f"127.0.0.1:{free_port()}")
    origin = f"127.0.0.1:{free_port()}"
    edge, edge_http_port, console_port = f"127.0.0.1:{free_port()}", free_port(), free_port()
    for index, address in enumerate(moderation):
        start_service(
            "moderation",
            f"moderation-{index}",
            {
                "REELSTREAM_MODERATION_KEYSPACE": keyspace,
                "REELSTREAM_MODERATION_GRPC_ADDRESS": address,
                "REELSTREAM_MODERATION_METRICS_PORT": "0",
                "REELSTREAM_MODERATION_EDGE_ADDRESSES": edge,
                "REELSTREAM_MODERATION_COUNTER_ADDRESSES": "",
                "REELSTREAM_MODERATION_WATCHLIST": WATCHWORD,
                "REELSTREAM_MODERATION_REPORT_ESCALATE_WEIGHT": "3",
                "REELSTREAM_MODERATION_REPORT_HIDE_WEIGHT": "10",
            },
            address,
        )
    start_service(
        "origin",
        "origin",
        {
            **origin_env(keyspace, origin, tmp_path / "media"),
            "REELSTREAM_ORIGIN_MODERATION_ADDRESS": moderation[0],
            "REELSTREAM_ORIGIN_CONSOLE_MODERATORS_FILE": str(
                write_moderators(tmp_path / "moderators")
            ),
            "REELSTREAM_ORIGIN_CONSOLE_ADDRESS": f"127.0.0.1:{console_port}",
        },
        origin,
    )
    start_service(
        "edge",
        "edge",
        {
            "REELSTREAM_EDGE_NAME": f"edge-console-{keyspace}",
            "REELSTREAM_EDGE_GRPC_ADDRESS": edge,
            "REELSTREAM_EDGE_METRICS_PORT": "0",
            "REELSTREAM_EDGE_REDIS_URL": f"redis://127.0.0.1:{redis_port}/0",
            "REELSTREAM_EDGE_COUNTER_ADDRESSES": "127.0.0.1:1",
            "REELSTREAM_EDGE_VALIDATE_REELS": "true",
            "REELSTREAM_EDGE_ORIGIN_ADDRESS": origin,
            "REELSTREAM_EDGE_HTTP_ADDRESS": f"127.0.0.1:{edge_http_port}",
            "REELSTREAM_EDGE_USER_TOKEN_KEYS": TOKEN_KEYS,
        },
        edge,
    )
    clip = make_original(tmp_path / "held.mp4", seconds=3)
    with grpc.insecure_channel(origin) as channel:
        stub = origin_pb2_grpc.OriginServiceStub(channel)
        reel_id = upload(stub, clip, HOSTILE_CAPTION)
        held = wait_state(
            stub, reel_id, origin_pb2.REEL_STATE_IN_REVIEW, origin_pb2.REEL_STATE_PUBLISHED,
            origin_pb2.REEL_STATE_REMOVED, origin_pb2.REEL_STATE_FAILED,
        )  # fmt: skip
    assert held.state == origin_pb2.REEL_STATE_IN_REVIEW, held
    return ConsoleStack(
        moderation,
        origin,
        f"http://127.0.0.1:{console_port}",
        f"http://127.0.0.1:{edge_http_port}",
        reel_id,
    )
