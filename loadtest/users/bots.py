"""Bot populations, the traffic the spam filter (issue 5) is meant to catch.

- `ShortWatchBot`: view farming with scripted short watches, fast, on the hottest reels
  and from a small pool of accounts (ids above 9e9, so analyses can tell them apart).
- `LockstepBot`: groups of `bot_group_size` members that act on the same tick: the same
  target reel, the same watch time, one shared IP hash (a device farm behind one address).

Their refusals (below threshold, duplicates, and once spam lands rate limits and blocklists)
are the system doing its job: reported per reason, never as failures.
"""

from __future__ import annotations

import itertools
import math
import time

from locust import constant, task
from locust.env import Environment

from loadtest import suite_config
from loadtest.users.edge_user import EdgeUser, PendingEvents
from protos import common_pb2

WEIGHTS = suite_config.settings().weight_table()
BOT_ID_BASE = 9_000_000_000
BOT_ACCOUNTS = 500
HOT_REELS = 5
ALL_REASONS = frozenset(common_pb2.RejectReason.values())
_member_numbers = itertools.count()


class ShortWatchBot(EdgeUser):
    """A script replaying short views of hot reels as fast as it dares."""

    weight = WEIGHTS["short_watch_bot"]
    wait_time = constant(0.5)
    expected_reasons = ALL_REASONS

    def __init__(self, environment: Environment) -> None:
        super().__init__(environment)
        self.user_id = BOT_ID_BASE + self.rng.randrange(BOT_ACCOUNTS)
        reels = self.settings.reel_ids
        self.targets = list(reels[: min(HOT_REELS, len(reels))])

    def on_start(self) -> None:
        self.resolve_edge()

    @task
    def farm_views(self) -> None:
        pending = PendingEvents()
        for reel_id in self.rng.sample(self.targets, k=min(3, len(self.targets))):
            pending.add(reel_id, common_pb2.EVENT_KIND_VIEW, self.rng.randint(3_000, 4_000))
        self.send(pending)


class LockstepBot(EdgeUser):
    """One member of a coordinated group; members of a group act on the same tick."""

    weight = WEIGHTS["lockstep_bot"]
    wait_time = constant(0)
    expected_reasons = ALL_REASONS

    def __init__(self, environment: Environment) -> None:
        super().__init__(environment)
        member = next(_member_numbers)
        self.squad = member // self.settings.bot_group_size
        self.user_id = BOT_ID_BASE + BOT_ACCOUNTS + member
        self.ip_hash = 0x5EED_0000 + self.squad  # the whole group shares one address

    def on_start(self) -> None:
        self.resolve_edge()

    @task
    def act_on_tick(self) -> None:
        interval_s = self.settings.bot_interval_s * self.settings.time_scale
        now = time.time()
        tick = math.floor(now / interval_s) + 1
        time.sleep(tick * interval_s - now)
        reels = self.settings.reel_ids
        # Every member derives the same target from (group, tick): no coordination traffic.
        target = reels[(self.squad * 7919 + tick * 104_729) % len(reels)]
        pending = PendingEvents()
        pending.add(target, common_pb2.EVENT_KIND_VIEW, 3_100 + (tick % 7) * 100)
        self.send(pending)
