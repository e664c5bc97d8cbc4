"""Creators: upload clips made by ffmpeg through the origin's client-streaming Upload, then
follow the reel (GetReel) until the origin has transcoded and published it.

Clips are made once per process (a few variants that differ in hue and tone, so content
hashes differ; the origin reuses the transcoded media of bytes it already has), kept in a
temporary folder. Every published reel joins the process's playable reels, so player
viewers also play fresh uploads (cold at the edge). The time from the end of the upload to
PUBLISHED is reported as the figure `upload`/`time_to_publish_ms`.
"""

from __future__ import annotations

import tempfile
import threading
import time
from pathlib import Path

import grpc
from locust import between, task
from locust.env import Environment

from loadtest import suite_config
from loadtest.clip_upload import ClipSpec, NotPublished, make_clip, upload_clip, wait_published
from loadtest.custom_stats import fire_sample
from loadtest.grpc_user import GrpcUser
from protos import origin_pb2_grpc

WEIGHTS = suite_config.settings().weight_table()
CLIP_VARIANTS = 3
PUBLISH_TIMEOUT_S = 120.0


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
                spec = ClipSpec(seconds=self._seconds, variant=variant)
                self._clips[variant] = make_clip(spec, self._folder / f"clip-{variant}.mp4")
            return self._clips[variant]


_library: ClipLibrary | None = None


def clip_library() -> ClipLibrary:
    global _library
    if _library is None:
        _library = ClipLibrary(suite_config.settings().clip_seconds)
    return _library


class Creator(GrpcUser):
    """Uploads a clip now and then and follows it until it is published."""

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
    def upload_and_publish(self) -> None:
        clip = clip_library().clip(self.rng.randrange(CLIP_VARIANTS))
        self.uploads += 1
        caption = f"load test clip {self.uploads} of creator {self.creator_id}"
        try:
            reel_id = upload_clip(
                self.origin,
                clip,
                self.creator_id,
                caption,
                self.settings.upload_chunk_bytes,
                timeout_s=max(30.0, self.settings.rpc_timeout_s),
            )
        except grpc.RpcError:
            return  # in the stats as a failed OriginService/Upload
        uploaded = time.perf_counter()
        try:
            wait_published(self.origin, reel_id, PUBLISH_TIMEOUT_S, self.settings.rpc_timeout_s)
        except grpc.RpcError:
            return  # in the stats as a failed OriginService/GetReel
        except NotPublished as exc:
            fire_sample(self.environment, "upload", "time_to_publish_ms", 0.0, self.context(), exc)
            return
        publish_ms = (time.perf_counter() - uploaded) * 1000
        fire_sample(self.environment, "upload", "time_to_publish_ms", publish_ms, self.context())
        suite_config.playable_reels().add(reel_id)
