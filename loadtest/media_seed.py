"""Media for player viewers when none is configured: when a test starts, every process that
runs player viewers (the single process, or each worker; never the master) uploads
`media_seed_clips` clips through the origin and adds each reel to its playable reels once
published.

The seeding runs beside the users (a gevent-patched thread), so the run's clock is not
spent waiting for it: player viewers wait for the first playable reel (`media_wait_s`).
The clips are the same bytes every run, so after the first run the origin reuses their
transcoded media and publishes within a second. Uploads and polls are requests in the stats
(user class "setup"); a reel that is not published is a failure named
`upload`/`media_seed`.
"""

from __future__ import annotations

import logging
import tempfile
import threading
from pathlib import Path

import grpc
from locust.env import Environment

from loadtest.clip_upload import ClipSpec, NotPublished, make_clip, upload_clip, wait_published
from loadtest.custom_stats import fire_sample
from loadtest.grpc_user import reporting_channel
from loadtest.load_settings import LoadSettings
from loadtest.playable_reels import PlayableReels
from protos import origin_pb2_grpc

SEED_CREATOR_ID = 1
CONTEXT = {"user_class": "setup"}
logger = logging.getLogger(__name__)
_started = threading.Event()


def seed_clip_spec(settings: LoadSettings, index: int) -> ClipSpec:
    """Seeded clips: 480x854 (three rungs at the origin), one variant each."""
    return ClipSpec(width=480, height=854, seconds=settings.media_clip_seconds, variant=index)


def start(environment: Environment, settings: LoadSettings, reels: PlayableReels) -> bool:
    """Starts seeding once per process, if player viewers need it; True if it started."""
    needed = settings.weight_table()["player_viewer"] > 0 and not settings.media_reel_ids
    if not needed or settings.media_seed_clips == 0 or len(reels) or _started.is_set():
        return False
    _started.set()
    threading.Thread(
        target=seed, args=(environment, settings, reels), name="media-seed", daemon=True
    ).start()
    return True


def seed(environment: Environment, settings: LoadSettings, reels: PlayableReels) -> None:
    """Uploads the seed clips one by one and adds each reel once it is published."""
    channel = reporting_channel(settings.origin, environment, CONTEXT)
    origin = origin_pb2_grpc.OriginServiceStub(channel)
    folder = Path(tempfile.mkdtemp(prefix="reelstream-seed-"))
    try:
        for index in range(settings.media_seed_clips):
            spec = seed_clip_spec(settings, index)
            clip = make_clip(spec, folder / f"seed-{index}.mp4")
            try:
                reel_id = upload_clip(
                    origin, clip, SEED_CREATOR_ID, f"load test media {index}",
                    settings.upload_chunk_bytes,
                )  # fmt: skip
                wait_published(origin, reel_id, settings.media_wait_s, settings.rpc_timeout_s)
            except grpc.RpcError as exc:
                logger.error("media seeding: upload %d failed: %s", index, exc)
                continue
            except NotPublished as exc:
                fire_sample(environment, "upload", "media_seed", 0.0, CONTEXT, exc)
                logger.error("media seeding: %s", exc)
                continue
            reels.add(reel_id)
            logger.info("media seeding: reel %d is playable", reel_id)
    finally:
        channel.close()
