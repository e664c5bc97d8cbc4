"""Reelstream's Locust suite: `locust -f loadtest/locustfile.py` (see docs/loadtest.md).

User classes (weights from REELSTREAM_LOADTEST_WEIGHTS, e.g. "viewer=5,lockstep_bot=1";
classes at weight 0 are left out by Locust):
  Viewer, PlayerViewer, Creator, Reporter, Moderator, and one bot class per attack family
  of the spam simulator: ShortWatchBot, LockstepBot, LikeFarmBot, CamouflagedBot,
  GeoHoppingBot, TakeoverBot, SlowDripBot.
A load shape replaces -u/-r/-t when REELSTREAM_LOADTEST_SHAPE is set.
"""

from __future__ import annotations

from typing import Any

from locust import events
from locust.env import Environment
from locust.runners import MasterRunner, WorkerRunner

from loadtest import catalog, class_stats, media_seed, suite_config
from loadtest.users.bots import (
    CamouflagedBot,
    GeoHoppingBot,
    LikeFarmBot,
    LockstepBot,
    ShortWatchBot,
    SlowDripBot,
    TakeoverBot,
)
from loadtest.users.creator import Creator
from loadtest.users.moderation import Moderator, Reporter
from loadtest.users.viewers import PlayerViewer, Viewer

__all__ = [
    "CamouflagedBot",
    "Creator",
    "GeoHoppingBot",
    "LikeFarmBot",
    "LockstepBot",
    "Moderator",
    "PlayerViewer",
    "Reporter",
    "ShortWatchBot",
    "SlowDripBot",
    "TakeoverBot",
    "Viewer",
]

if suite_config.settings().shape:
    from loadtest.shapes import ReelstreamShape

    __all__ += ["ReelstreamShape"]


def on_init(environment: Environment, **_: Any) -> None:
    class_stats.install(environment)
    settings = suite_config.settings()
    if not isinstance(environment.runner, MasterRunner):
        # Before any gRPC channel exists (see loadtest/clip_library.py).
        if settings.weight_table()["creator"] > 0:
            suite_config.creator_clips().prepare()
        if media_seed.needed(settings):
            suite_config.seed_clips().prepare()


def on_test_start(environment: Environment, **_: Any) -> None:
    settings = suite_config.settings()
    if settings.seed_catalog and not isinstance(environment.runner, WorkerRunner):
        catalog.seed(environment, settings)
    if not isinstance(environment.runner, MasterRunner):
        reels = suite_config.playable_reels()
        media_seed.start(environment, settings, suite_config.seed_clips(), reels)


events.init.add_listener(on_init)
events.test_start.add_listener(on_test_start)
