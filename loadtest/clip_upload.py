"""Putting real video into the origin: test clips made by ffmpeg, the client-streaming
Upload, and waiting until the origin has published the reel.

No Locust import, so tests and tools use it as well as the suite's creators and its media
seeding (under Locust, gevent patches `subprocess` and `time.sleep`, so other simulated
users run while ffmpeg works or a reel is transcoded).
"""

from __future__ import annotations

import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from protos import origin_pb2, origin_pb2_grpc

FFMPEG_TIMEOUT_S = 60.0
PUBLISH_POLL_S = 0.5
FINAL_STATES = frozenset(
    (origin_pb2.REEL_STATE_PUBLISHED, origin_pb2.REEL_STATE_REMOVED, origin_pb2.REEL_STATE_FAILED)
)


@dataclass(frozen=True)
class ClipSpec:
    """A vertical test clip: moving pattern and a tone; `variant` changes hue and pitch, so
    clips of different variants have different bytes (and content hashes)."""

    width: int = 360
    height: int = 640
    seconds: float = 2.0
    variant: int = 0


class NotPublished(Exception):
    """The reel reached a final state other than PUBLISHED, or the wait ran out."""


def make_clip(spec: ClipSpec, path: Path) -> bytes:
    """Encodes `spec` with ffmpeg into `path` (H.264 + AAC MP4) and returns its bytes."""
    seconds = f"{spec.seconds:g}"
    command = [
        "ffmpeg", "-hide_banner", "-loglevel", "error", "-y",
        "-f", "lavfi", "-i", f"testsrc2=size={spec.width}x{spec.height}:rate=30:duration={seconds}",
        "-f", "lavfi", "-i", f"sine=frequency={440 + 110 * spec.variant}:duration={seconds}",
        "-vf", f"hue=h={spec.variant * 120}",
        "-c:v", "libx264", "-preset", "ultrafast", "-threads", "1", "-pix_fmt", "yuv420p",
        "-c:a", "aac", "-shortest", "-movflags", "+faststart", str(path),
    ]  # fmt: skip
    subprocess.run(command, check=True, timeout=FFMPEG_TIMEOUT_S, capture_output=True)
    return path.read_bytes()


def upload_messages(
    clip: bytes, creator_id: int, caption: str, chunk_bytes: int
) -> Iterator[origin_pb2.UploadRequest]:
    """The Upload stream: metadata first, then the file in chunks with their offsets."""
    yield origin_pb2.UploadRequest(
        metadata=origin_pb2.UploadMetadata(
            creator_id=creator_id,
            caption=caption,
            hashtags=["loadtest"],
            total_bytes=len(clip),
            filename="clip.mp4",
        )
    )
    for offset in range(0, len(clip), chunk_bytes):
        yield origin_pb2.UploadRequest(chunk=clip[offset : offset + chunk_bytes], offset=offset)


def upload_clip(
    origin: origin_pb2_grpc.OriginServiceStub,
    clip: bytes,
    creator_id: int,
    caption: str,
    chunk_bytes: int = 256 * 1024,
    timeout_s: float = 60.0,
) -> int:
    """Uploads `clip` in one stream; returns the new reel's id (raises grpc.RpcError)."""
    response: origin_pb2.UploadResponse = origin.Upload(
        upload_messages(clip, creator_id, caption, chunk_bytes), timeout=timeout_s
    )
    return response.reel_id


def wait_published(
    origin: origin_pb2_grpc.OriginServiceStub,
    reel_id: int,
    timeout_s: float,
    rpc_timeout_s: float = 5.0,
) -> origin_pb2.Reel:
    """Polls GetReel until the reel is PUBLISHED; raises NotPublished (FAILED, REMOVED or
    still processing after `timeout_s`) or grpc.RpcError."""
    deadline = time.monotonic() + timeout_s
    while True:
        reel: origin_pb2.Reel = origin.GetReel(
            origin_pb2.GetReelRequest(reel_id=reel_id), timeout=rpc_timeout_s
        )
        if reel.state == origin_pb2.REEL_STATE_PUBLISHED:
            return reel
        if reel.state in FINAL_STATES:
            state = origin_pb2.ReelState.Name(reel.state)
            raise NotPublished(f"reel {reel_id} ended {state}")
        if time.monotonic() + PUBLISH_POLL_S > deadline:
            raise NotPublished(f"reel {reel_id} not published after {timeout_s:g} s")
        time.sleep(PUBLISH_POLL_S)
