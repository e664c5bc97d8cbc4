"""Attack families of the spam simulator as Locust bot campaigns (loadtest/spam_campaign.py):
the replay sends exactly the simulator's events of the family, per account, on a clock
compressed by the time scale. (Locust itself is not imported: gevent stays out.)"""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from loadtest.load_settings import DEFAULT_WEIGHTS, load
from loadtest.spam_campaign import (
    ATTACKER_ID_BASE,
    FAMILY_WEIGHT_KEYS,
    MAX_ACCOUNTS,
    CampaignPlan,
    campaign_events,
    campaign_sends,
)
from loadtest.spam_population import Family, TrafficSpec
from loadtest.spam_traffic import simulate
from reelstream.settings import ConfigError

ATTACKS = [family for family in Family if family is not Family.ORGANIC]


def plan(family: Family, **changes: object) -> CampaignPlan:
    base = CampaignPlan(
        family=family,
        seed=7,
        accounts=12,
        trace_s=3_600,
        reels=300,
        first_reel_id=1_001,
        time_scale=0.01,
    )
    return dataclasses.replace(base, **changes)  # type: ignore[arg-type]


def test_every_attack_family_has_a_bot_class_weight_that_is_small_by_default() -> None:
    assert set(FAMILY_WEIGHT_KEYS) == set(ATTACKS)
    for key in FAMILY_WEIGHT_KEYS.values():
        assert 0 < DEFAULT_WEIGHTS[key] <= DEFAULT_WEIGHTS["viewer"] // 5


@pytest.mark.parametrize("family", ATTACKS, ids=lambda family: family.name)
def test_campaign_replays_the_simulators_events_of_that_family_on_the_load_catalog(
    family: Family,
) -> None:
    traffic = simulate(
        TrafficSpec(seed=7, duration_s=3_600, reels=300, organic_users=500, attackers={family: 12})
    )
    expected = traffic.events.take(np.flatnonzero(traffic.family == int(family)))
    events = campaign_events(plan(family))
    assert len(events) == len(expected) > 0
    assert np.array_equal(events.reel_ids, expected.reel_ids + np.uint64(1_000))
    assert events.reel_ids.min() >= 1_001
    assert events.reel_ids.max() <= 1_300
    for column in ("user_ids", "kinds", "watch_ms", "ts_ms", "countries", "devices"):
        assert np.array_equal(getattr(events, column), getattr(expected, column)), column
    assert np.array_equal(events.ip_hashes, expected.ip_hashes)


@pytest.mark.parametrize("family", ATTACKS, ids=lambda family: family.name)
def test_sends_cover_every_event_once_per_account_in_due_order(family: Family) -> None:
    the_plan = plan(family)
    events = campaign_events(the_plan)
    sends = campaign_sends(the_plan)
    assert sum(len(send.events) for send in sends) == len(events)
    dues = [send.due_s for send in sends]
    assert dues == sorted(dues)
    assert dues[0] == 0.0
    # The simulated period, compressed by the time scale.
    span_s = (events.ts_ms.max() - events.ts_ms.min()) / 1000
    assert dues[-1] <= span_s * the_plan.time_scale
    for send in sends:
        assert set(send.events.user_ids.tolist()) == {send.user_id}
        assert len(send.events) <= the_plan.max_events_per_send
        spread_s = (send.events.ts_ms.max() - send.events.ts_ms.min()) / 1000
        assert spread_s * the_plan.time_scale < the_plan.tick_s
    replayed = sorted(
        (int(t), int(r), int(k))
        for send in sends
        for t, r, k in zip(send.events.ts_ms, send.events.reel_ids, send.events.kinds, strict=True)
    )
    assert replayed == sorted(
        zip(events.ts_ms.tolist(), events.reel_ids.tolist(), events.kinds.tolist(), strict=True)
    )


def test_lockstep_members_stay_within_one_compressed_window() -> None:
    the_plan = plan(Family.LOCKSTEP, accounts=25)
    sends = campaign_sends(the_plan)
    # Likes of one target reel by the farm: the simulator puts them in one 3-10 minute
    # window, so the replay delivers them within 10 min * time scale of each other.
    likes: dict[int, list[tuple[float, int]]] = {}
    for send in sends:
        for reel, kind in zip(send.events.reel_ids, send.events.kinds, strict=True):
            if kind == 2:
                likes.setdefault(int(reel), []).append((send.due_s, send.user_id))
    targets = {reel: acts for reel, acts in likes.items() if len(acts) >= 10}
    assert targets
    for acts in targets.values():
        dues = [due for due, _ in acts]
        assert max(dues) - min(dues) <= 10 * 60 * the_plan.time_scale + the_plan.tick_s
        assert len({user for _, user in acts}) >= 10


def test_account_slots_give_concurrent_campaigns_their_own_attacker_accounts() -> None:
    first = campaign_events(plan(Family.SHORT_WATCH, account_slot=0))
    third = campaign_events(plan(Family.SHORT_WATCH, account_slot=2))
    assert np.array_equal(third.user_ids, first.user_ids + np.uint64(2 * MAX_ACCOUNTS))
    # Takeover victims are organic accounts: they keep their ids.
    victims = campaign_events(plan(Family.TAKEOVER, account_slot=5)).user_ids
    assert victims.max() < ATTACKER_ID_BASE


def test_another_seed_is_another_campaign() -> None:
    first = campaign_events(plan(Family.LIKE_FARM, seed=1))
    second = campaign_events(plan(Family.LIKE_FARM, seed=2))
    assert set(first.reel_ids.tolist()) != set(second.reel_ids.tolist())


@pytest.mark.parametrize(
    "changes",
    [
        {"family": Family.ORGANIC},
        {"accounts": 0},
        {"accounts": MAX_ACCOUNTS + 1},
        {"reels": 50},
        {"trace_s": 60},
        {"time_scale": 0.0},
        {"account_slot": 1_000},
    ],
)
def test_impossible_campaigns_are_refused(changes: dict[str, object]) -> None:
    with pytest.raises(ValueError, match=r"must|organic|catalog|out of range"):
        campaign_sends(dataclasses.replace(plan(Family.SHORT_WATCH), **changes))  # type: ignore[arg-type]


def test_bot_settings_are_validated() -> None:
    assert load({"REELSTREAM_LOADTEST_SPAM_ACCOUNTS": "20"}).spam_accounts == 20
    for name, value in (
        ("SPAM_ACCOUNTS", "0"),
        ("SPAM_TRACE_S", "10"),
        ("SPAM_TIME_SCALE", "0"),
        ("USER_TOKEN_KEYS", "k1:short"),
    ):
        with pytest.raises(ConfigError):
            load({f"REELSTREAM_LOADTEST_{name}": value})
