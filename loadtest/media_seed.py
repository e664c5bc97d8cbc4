"""Media for player viewers when none is configured: when a test starts, every process that
runs player viewers (the single process, or each worker; never the master) uploads
`media_seed_clips` clips through the origin and adds each reel to its playable reels once
published.

The clips are made at Locust's `init` event (`loadtest/clip_library.py` says why); the
uploads run beside the users (a gevent-patched thread), so the run's clock is not spent
waiting for them: player viewers wait for the first playable reel (`media_wait_s`).
The clips are the same bytes every run, so after the first run the origin reuses their
transcoded media and publishes within a second. Uploads and polls are requests in the stats
(user class "setup"); a reel that is not published is a failure named
`upload`/`media_seed`.
"""

from __future__ import annotations

import logging
import threading

import grpc
from locust.env import Environment

from loadtest.clip_library import ClipLibrary
from loadtest.clip_upload import NotPublished, upload_clip, wait_published
from loadtest.custom_stats import fire_sample
from loadtest.grpc_user import reporting_channel
from loadtest.load_settings import LoadSettings
from loadtest.playable_reels import PlayableReels
from protos import origin_pb2_grpc

SEED_CREATOR_ID = 1
CONTEXT = {"user_class": "setup"}
logger = logging.getLogger(__name__)
_started = threading.Event()


def needed(settings: LoadSettings) -> bool:
    """Player viewers are on and no media reels are configured."""
    players = settings.weight_table()["player_viewer"] > 0
    return players and not settings.media_reel_ids and settings.media_seed_clips > 0


def start(
    environment: Environment, settings: LoadSettings, clips: ClipLibrary, reels: PlayableReels
) -> bool:
    """Starts seeding once per process, if player viewers need it; True if it started."""
    if not needed(settings) or len(reels) or _started.is_set():
        return False
    _started.set()
    threading.Thread(
        target=seed, args=(environment, settings, clips, reels), name="media-seed", daemon=True
    ).start()
    return True


def seed(
    environment: Environment, settings: LoadSettings, clips: ClipLibrary, reels: PlayableReels
) -> None:
    """Uploads the seed clips one by one and adds each reel once it is published."""
    channel = reporting_channel(settings.origin, environment, CONTEXT)
    origin = origin_pb2_grpc.OriginServiceStub(channel)
    try:
        for index in range(settings.media_seed_clips):
            clip = clips.clip(index)
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
