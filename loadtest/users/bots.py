"""Bot populations from the spam simulator: one Locust user class per attack family.

Each bot user replays campaigns of its family, made by the simulator
(`loadtest.spam_campaign`): the family's accounts, IP hashes, countries, devices, watch
times and timing, on a clock compressed by `spam_time_scale`. Every call carries one
account's events, signed as that account when the suite holds the token keys. A user runs
one campaign after another (a new seed each); its accounts are its own (`account_slot`).

The classes (weight keys in `loadtest.spam_campaign.FAMILY_WEIGHT_KEYS`): ShortWatchBot,
LockstepBot, LikeFarmBot, CamouflagedBot, GeoHoppingBot, TakeoverBot, SlowDripBot; what each
family does is described in `loadtest.spam_traffic`.

Their refusals (duplicates, rate limits, blocklists once the spam service pushes one) are
the system doing its job: reported per reason, never as failures.
"""

from __future__ import annotations

import itertools
import time
from typing import ClassVar

from locust import constant, task

from loadtest import suite_config
from loadtest.spam_campaign import FAMILY_WEIGHT_KEYS, CampaignPlan, CampaignSend, campaign_sends
from loadtest.spam_population import Family
from loadtest.users.edge_user import EdgeUser
from protos import common_pb2

WEIGHTS = suite_config.settings().weight_table()
ALL_REASONS = frozenset(common_pb2.RejectReason.values())
_account_slots = itertools.count()


class FamilyBot(EdgeUser):
    """Replays campaigns of `family`, one after another."""

    abstract = True
    family: ClassVar[Family]
    wait_time = constant(0)
    expected_reasons = ALL_REASONS

    def on_start(self) -> None:
        self.resolve_edge()
        # Slots 0..999 per process; a distributed run's workers draw different campaigns
        # (seeds) but may share accounts, which only adds duplicate-view refusals.
        self.account_slot = next(_account_slots) % 1_000

    def plan(self) -> CampaignPlan:
        settings = self.settings
        return CampaignPlan(
            family=self.family,
            seed=self.rng.getrandbits(32),
            accounts=settings.spam_accounts,
            trace_s=settings.spam_trace_s,
            reels=settings.reels,
            first_reel_id=settings.first_reel_id,
            time_scale=settings.spam_time_scale,
            account_slot=self.account_slot,
        )

    @task
    def run_campaign(self) -> None:
        started = time.monotonic()
        for send in campaign_sends(self.plan()):
            delay = started + send.due_s - time.monotonic()
            if delay > 0:
                time.sleep(delay)  # gevent's sleep: the process's other users run
            self.send_now(send)

    def send_now(self, send: CampaignSend) -> None:
        batch = send.events.to_batch()
        del batch.client_ts_ms[:]
        batch.client_ts_ms.extend([int(time.time() * 1000)] * len(send.events))
        self.send_batch(batch, send.user_id)


def _weight(family: Family) -> int:
    return WEIGHTS[FAMILY_WEIGHT_KEYS[family]]


class ShortWatchBot(FamilyBot):
    """View bots: short watches at a steady rate from datacenter IPs."""

    family = Family.SHORT_WATCH
    weight = _weight(Family.SHORT_WATCH)


class LockstepBot(FamilyBot):
    """Farm groups viewing and liking the same reels within the same minutes."""

    family = Family.LOCKSTEP
    weight = _weight(Family.LOCKSTEP)


class LikeFarmBot(FamilyBot):
    """Farm groups liking the same reels in lockstep without watching."""

    family = Family.LIKE_FARM
    weight = _weight(Family.LIKE_FARM)


class CamouflagedBot(FamilyBot):
    """Bots imitating human sessions and watch times."""

    family = Family.CAMOUFLAGED
    weight = _weight(Family.CAMOUFLAGED)


class GeoHoppingBot(FamilyBot):
    """Accounts hopping countries and IPs minutes apart."""

    family = Family.GEO_HOPPING
    weight = _weight(Family.GEO_HOPPING)


class TakeoverBot(FamilyBot):
    """Taken-over organic accounts: short bursts from a new country."""

    family = Family.TAKEOVER
    weight = _weight(Family.TAKEOVER)


class SlowDripBot(FamilyBot):
    """Many accounts each adding a few human-looking views and likes."""

    family = Family.SLOW_DRIP
    weight = _weight(Family.SLOW_DRIP)


FAMILY_BOTS: tuple[type[FamilyBot], ...] = (
    ShortWatchBot,
    LockstepBot,
    LikeFarmBot,
    CamouflagedBot,
    GeoHoppingBot,
    TakeoverBot,
    SlowDripBot,
)
