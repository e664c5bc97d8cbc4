"""Attack campaigns for Locust: one attack family of the spam simulator, replayed in time.

The simulator (`loadtest.spam_traffic.simulate`) is the one source of truth for what a
family does (accounts, IP hashes, countries, devices, watch times, targets, timing); this
module only takes the family's labelled events out of a simulated period, maps its reels
onto the load test's catalog and cuts them into per-account sends on a compressed clock.
Pure (numpy, no Locust), so the mapping is unit-tested without gevent.

Time: an event `t` ms after the campaign's first event is due `t / 1000 * time_scale`
seconds after the campaign starts, so a farm's members still act within the same (shorter)
windows and a view bot keeps its steady period, only faster. Events of one account due in
the same `tick_s` go out as one SendEvents call, signed as that account.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from loadtest.spam_population import Family, TrafficSpec
from loadtest.spam_traffic import simulate
from spam.event_frame import EventFrame

# Weight keys of the Locust classes that replay each family (REELSTREAM_LOADTEST_WEIGHTS).
FAMILY_WEIGHT_KEYS: dict[Family, str] = {
    Family.SHORT_WATCH: "short_watch_bot",
    Family.LOCKSTEP: "lockstep_bot",
    Family.LIKE_FARM: "like_farm_bot",
    Family.CAMOUFLAGED: "camouflaged_bot",
    Family.GEO_HOPPING: "geo_hopping_bot",
    Family.TAKEOVER: "takeover_bot",
    Family.SLOW_DRIP: "slow_drip_bot",
}
# The simulator's attacker accounts start here (takeover victims are organic ids below it).
ATTACKER_ID_BASE = 100_000_000
MAX_ACCOUNTS = 1_000
"""Accounts per campaign; campaigns shift their accounts by multiples of it, within the
simulator's block of 1,000,000 ids per family."""
ORGANIC_USERS = 500
"""Organic population simulated beside the family (takeover victims are drawn from it;
its own events are dropped)."""


@dataclass(frozen=True)
class CampaignPlan:
    """One replay of one attack family."""

    family: Family
    seed: int
    """Simulator seed: another seed is another campaign (targets, accounts' behaviour)."""
    accounts: int
    """Attacker accounts (takeover: victims) the simulator gives the family."""
    trace_s: int
    """Simulated period the campaign's events are drawn from."""
    reels: int
    """Catalog size: simulated reel r is reel first_reel_id + r - 1."""
    first_reel_id: int
    time_scale: float
    """Real seconds per simulated second."""
    account_slot: int = 0
    """Shifts attacker ids by account_slot * MAX_ACCOUNTS, so concurrent campaigns of one
    family use distinct accounts."""
    tick_s: float = 0.25
    """Events of one account due within one tick share a call."""
    max_events_per_send: int = 100

    def validate(self) -> None:
        if self.family is Family.ORGANIC:
            raise ValueError("organic viewers are not an attack family")
        if not 0 < self.accounts <= MAX_ACCOUNTS:
            raise ValueError(f"accounts must be in 1..{MAX_ACCOUNTS}")
        if self.reels < 100:
            raise ValueError("attack families need a catalog of at least 100 reels")
        if self.trace_s < 600 or self.time_scale <= 0 or self.tick_s <= 0:
            raise ValueError("trace_s must be >= 600 s; time_scale and tick_s positive")
        if not 0 <= self.account_slot < 1_000_000 // MAX_ACCOUNTS:
            raise ValueError("account_slot out of range")


@dataclass(frozen=True)
class CampaignSend:
    """One SendEvents call of one account."""

    due_s: float
    """Seconds after the campaign's start."""
    user_id: int
    events: EventFrame
    """Its events; ts_ms is simulated time (the sender stamps the wall clock)."""


def campaign_events(plan: CampaignPlan) -> EventFrame:
    """The family's events of one simulated period, in time order, on the load catalog."""
    plan.validate()
    spec = TrafficSpec(
        seed=plan.seed,
        duration_s=plan.trace_s,
        reels=plan.reels,
        organic_users=max(ORGANIC_USERS, plan.accounts),
        attackers={plan.family: plan.accounts},
    )
    traffic = simulate(spec)
    events = traffic.events.take(np.flatnonzero(traffic.family == int(plan.family)))
    users = events.user_ids.copy()
    attackers = users >= ATTACKER_ID_BASE
    users[attackers] += np.uint64(plan.account_slot * MAX_ACCOUNTS)
    reels = events.reel_ids + np.uint64(plan.first_reel_id - 1)
    return EventFrame(
        reels,
        users,
        events.kinds,
        events.watch_ms,
        events.ts_ms,
        events.countries,
        events.devices,
        events.ip_hashes,
    )


def campaign_sends(plan: CampaignPlan) -> list[CampaignSend]:
    """The campaign as calls in due order: per account, the events due in one tick."""
    events = campaign_events(plan)
    if not len(events):
        return []
    due_s = (events.ts_ms - events.ts_ms[0]) / 1000.0 * plan.time_scale
    tick = (due_s // plan.tick_s).astype(np.int64)
    users, user_index = np.unique(events.user_ids, return_inverse=True)
    # Stable order by (tick, account): the simulator's order within a call is kept.
    order = np.lexsort((user_index, tick))
    key = tick[order] * len(users) + user_index[order]
    starts = np.flatnonzero(np.r_[True, key[1:] != key[:-1]])
    sends = []
    for group in np.split(order, starts[1:]):
        for first in range(0, len(group), plan.max_events_per_send):
            part = group[first : first + plan.max_events_per_send]
            sends.append(
                CampaignSend(
                    float(due_s[part[0]]), int(events.user_ids[part[0]]), events.take(part)
                )
            )
    sends.sort(key=lambda send: send.due_s)
    return sends
