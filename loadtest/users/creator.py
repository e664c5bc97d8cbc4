"""Creators: upload clips made by ffmpeg through the origin's client-streaming Upload, then
follow the reel (GetReel) until the origin has transcoded and published it.

Clips are made once per process (`suite_config.creator_clips`: a few variants that differ
in hue and tone, so content hashes differ; the origin reuses the transcoded media of bytes
it already has). Every published reel joins the process's playable reels, so player
viewers also play fresh uploads (cold at the edge). The time from the end of the upload to
PUBLISHED is reported as the figure `upload`/`time_to_publish_ms`.
"""

from __future__ import annotations

import time

import grpc
from locust import between, task
from locust.env import Environment

from loadtest import suite_config
from loadtest.clip_upload import NotPublished, upload_clip, wait_published
from loadtest.custom_stats import fire_sample
from loadtest.grpc_user import GrpcUser
from protos import origin_pb2_grpc

WEIGHTS = suite_config.settings().weight_table()
PUBLISH_TIMEOUT_S = 120.0


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
        clips = suite_config.creator_clips()
        clip = clips.clip(self.rng.randrange(len(clips)))
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
