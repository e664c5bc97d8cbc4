"""Creators: upload clips made by ffmpeg through the origin's client-streaming Upload.

Off by default until the origin implements Upload (issue 4); before that every upload is
an UNIMPLEMENTED failure in the stats. Clips are made once per process (a few variants that
differ in hue and tone, so content hashes differ), kept in a temporary folder.
"""

from __future__ import annotations

import subprocess
import tempfile
import threading
from collections.abc import Iterator
from pathlib import Path

import grpc
from locust import between, task
from locust.env import Environment

from loadtest import suite_config
from loadtest.grpc_user import GrpcUser
from protos import origin_pb2, origin_pb2_grpc

WEIGHTS = suite_config.settings().weight_table()
CLIP_VARIANTS = 3
FFMPEG_TIMEOUT_S = 60.0


class ClipLibrary:
    """Short vertical test clips, made by ffmpeg on first use (one at a time per process)."""

    def __init__(self, seconds: float) -> None:
        self._seconds = seconds
        self._folder = Path(tempfile.mkdtemp(prefix="reelstream-clips-"))
        self._clips: dict[int, bytes] = {}
        self._lock = threading.Lock()  # gevent-patched: other users run while ffmpeg does

    def clip(self, variant: int) -> bytes:
        variant %= CLIP_VARIANTS
        with self._lock:
            if variant not in self._clips:
                self._clips[variant] = self._make(variant)
            return self._clips[variant]

    def _make(self, variant: int) -> bytes:
        path = self._folder / f"clip-{variant}.mp4"
        seconds = f"{self._seconds:g}"
        command = [
            "ffmpeg", "-hide_banner", "-loglevel", "error", "-y",
            "-f", "lavfi", "-i", f"testsrc2=size=360x640:rate=30:duration={seconds}",
            "-f", "lavfi", "-i", f"sine=frequency={440 + 110 * variant}:duration={seconds}",
            "-vf", f"hue=h={variant * 120}",
            "-c:v", "libx264", "-preset", "ultrafast", "-pix_fmt", "yuv420p",
            "-c:a", "aac", "-shortest", "-movflags", "+faststart", str(path),
        ]  # fmt: skip
        subprocess.run(command, check=True, timeout=FFMPEG_TIMEOUT_S)
        return path.read_bytes()


_library: ClipLibrary | None = None


def clip_library() -> ClipLibrary:
    global _library
    if _library is None:
        _library = ClipLibrary(suite_config.settings().clip_seconds)
    return _library


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


class Creator(GrpcUser):
    """Uploads a clip now and then and checks on its processing."""

    weight = WEIGHTS["creator"]
    wait_time = between(20, 40)

    def __init__(self, environment: Environment) -> None:
        super().__init__(environment)
        self.settings = suite_config.settings()
        self.rng = suite_config.new_rng()
        self.creator_id = self.rng.randint(1, 100_000)
        self.uploads = 0

    @property
    def origin(self) -> origin_pb2_grpc.OriginServiceStub:
        return origin_pb2_grpc.OriginServiceStub(self.channel(self.settings.origin))

    @task
    def upload_clip(self) -> None:
        clip = clip_library().clip(self.rng.randrange(CLIP_VARIANTS))
        self.uploads += 1
        messages = upload_messages(
            clip,
            self.creator_id,
            f"load test clip {self.uploads} of creator {self.creator_id}",
            self.settings.upload_chunk_bytes,
        )
        try:
            response = self.origin.Upload(messages, timeout=max(30.0, self.settings.rpc_timeout_s))
        except grpc.RpcError:
            return
        try:
            self.origin.GetReel(
                origin_pb2.GetReelRequest(reel_id=response.reel_id),
                timeout=self.settings.rpc_timeout_s,
            )
        except grpc.RpcError:
            return
