"""Seeding the simulated catalog into the origin before a test, so edges accept its events.

ImportReels is idempotent: repeated runs re-import the same reels. Runs on the master (or
the single process), never on workers, from Locust's test_start event; a failure is a
request failure in the stats ("OriginService/ImportReels") and a log line.
"""

from __future__ import annotations

import logging
import time

import grpc
from locust.env import Environment

from loadtest.grpc_user import reporting_channel
from loadtest.load_settings import LoadSettings
from protos import origin_pb2, origin_pb2_grpc
from reelstream.caller_policy import ADMIN

IMPORT_CHUNK = 1_000
logger = logging.getLogger(__name__)


def seed(environment: Environment, settings: LoadSettings) -> int:
    """Imports reels first_reel_id.. as PUBLISHED; returns how many the origin took."""
    now_ms = int(time.time() * 1000)
    imported = 0
    # ImportReels is an operator's call (reelstream/caller_policy.py).
    channel = reporting_channel(settings.origin, environment, {"user_class": "setup"}, ADMIN)
    try:
        origin = origin_pb2_grpc.OriginServiceStub(channel)
        ids = settings.reel_ids
        for start in range(0, len(ids), IMPORT_CHUNK):
            reels = [
                origin_pb2.Reel(
                    reel_id=reel_id,
                    creator_id=1 + reel_id % 10_000,
                    caption=f"load test reel {reel_id}",
                    state=origin_pb2.REEL_STATE_PUBLISHED,
                    duration_ms=settings.reel_duration_ms,
                    created_ms=now_ms,
                )
                for reel_id in ids[start : start + IMPORT_CHUNK]
            ]
            response = origin.ImportReels(origin_pb2.ImportReelsRequest(reels=reels), timeout=30.0)
            imported += response.imported
    except grpc.RpcError as exc:
        logger.error("seeding the catalog into %s failed: %s", settings.origin, exc)
    finally:
        channel.close()
    logger.info("catalog: %d reels imported into %s", imported, settings.origin)
    return imported
