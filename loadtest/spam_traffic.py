"""Seeded simulator of labelled viewer traffic: organic viewers plus attack families.

Pure and vectorised (numpy): the same `TrafficSpec` always yields the same events. Every
event carries its family label (0 = organic), so precision and recall can be measured.

Organic viewers: Zipf reel popularity, sessions placed by a diurnal curve, watch time as a
mixture of early swipes and (re)watches as a fraction of the reel's length, likes more
likely after long watches, home countries, one or two devices, IPs that are either a home
line or a carrier NAT shared by many viewers.

Attack families:
- SHORT_WATCH: view bots, watches just above the 3 s view threshold, high steady rate, few
  datacenter IPs, a handful of target reels viewed again and again.
- LOCKSTEP: farms of accounts that each view and like the same target reels within the same
  few minutes, from a few IPs of one range, plus a little random browsing.
- LIKE_FARM: farms liking target reels in lockstep without watching them.
- CAMOUFLAGED: bots imitating organic sessions and watch times, with a share of their views
  and likes going to campaign reels, rotating residential-proxy IPs per session.
- GEO_HOPPING: accounts whose consecutive events come from other countries and IPs minutes
  apart (impossible travel), human-like watches on target reels.
- TAKEOVER: organic accounts taken over for a short burst of likes and views on target reels
  from a new country and IP (only the burst is labelled).
- SLOW_DRIP: many accounts each adding a few human-looking views and likes to target reels
  spread over the whole period (the hardest family; kept for held-out evaluation).
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

from loadtest.spam_attacks import (
    _camouflaged,
    _farm,
    _geo_hopping,
    _short_watch,
    _slow_drip,
    _takeover,
)
from loadtest.spam_population import (
    DEFAULT_ATTACKERS,
    F64,
    Family,
    LabelledTraffic,
    TrafficSpec,
    _Catalog,
    _organic,
    _Parts,
)
from spam.event_frame import VIEW, EventFrame


def simulate(spec: TrafficSpec) -> LabelledTraffic:
    """The labelled traffic of `spec`, sorted by time, clipped to its period."""
    rng = np.random.default_rng(spec.seed)
    catalog = _Catalog(rng, spec)
    parts = _Parts()
    _organic(rng, catalog, spec, parts)
    attackers = spec.attackers
    if attackers.get(Family.SHORT_WATCH, 0):
        _short_watch(rng, catalog, spec, parts, attackers[Family.SHORT_WATCH])
    if attackers.get(Family.LOCKSTEP, 0):
        _farm(rng, catalog, spec, parts, Family.LOCKSTEP, attackers[Family.LOCKSTEP], 25, True)
    if attackers.get(Family.LIKE_FARM, 0):
        _farm(rng, catalog, spec, parts, Family.LIKE_FARM, attackers[Family.LIKE_FARM], 40, False)
    if attackers.get(Family.CAMOUFLAGED, 0):
        _camouflaged(rng, catalog, spec, parts, attackers[Family.CAMOUFLAGED])
    if attackers.get(Family.GEO_HOPPING, 0):
        _geo_hopping(rng, catalog, spec, parts, attackers[Family.GEO_HOPPING])
    if attackers.get(Family.TAKEOVER, 0):
        _takeover(rng, catalog, spec, parts, attackers[Family.TAKEOVER])
    if attackers.get(Family.SLOW_DRIP, 0):
        _slow_drip(rng, catalog, spec, parts, attackers[Family.SLOW_DRIP])
    columns = {name: np.concatenate(values) for name, values in parts.columns.items()}
    end_ms = spec.start_ms + spec.duration_s * 1000
    inside = (columns["ts"] >= spec.start_ms) & (columns["ts"] < end_ms)
    order = np.flatnonzero(inside)[np.argsort(columns["ts"][inside], kind="stable")]
    events = EventFrame(
        reel_ids=columns["reel"][order].astype(np.uint64),
        user_ids=columns["user"][order].astype(np.uint64),
        kinds=columns["kind"][order].astype(np.int64),
        watch_ms=columns["watch"][order].astype(np.int64),
        ts_ms=columns["ts"][order].astype(np.int64),
        countries=columns["country"][order].astype(np.uint16),
        devices=columns["device"][order].astype(np.int64),
        ip_hashes=columns["ip"][order].astype(np.uint64),
    )
    return LabelledTraffic(
        events, columns["family"][order].astype(np.int8), catalog.durations_ms, spec
    )


def passes_view_rule(traffic: LabelledTraffic, threshold_ms: int = 3_000) -> npt.NDArray[np.bool_]:
    """Events the edge would count: likes, and views watched at least the threshold (or
    half of a shorter reel); the filter only ever sees these."""
    events = traffic.events
    durations = traffic.durations_of(events.reel_ids)
    needed = np.minimum(threshold_ms, durations // 2)
    counted: npt.NDArray[np.bool_] = (events.kinds != VIEW) | (events.watch_ms >= needed)
    return counted


__all__ = [
    "DEFAULT_ATTACKERS",
    "F64",
    "Family",
    "LabelledTraffic",
    "TrafficSpec",
    "passes_view_rule",
    "simulate",
]
