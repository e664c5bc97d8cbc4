"""Per-event spam features over a window of events (pure, vectorised).

Every feature is computed for all events of an `EventFrame` at once. Trailing rates look
back from each event (60 s); per-user, per-IP and per-reel aggregates cover the whole
frame, which the service keeps as its recent history (an hour), so "per hour" features are
divided by the frame's length in hours (at least one). NaN means "does not apply" (the
watch time of a like, the rate of an unknown IP): the model handles missing values natively.

Account age: events carry no account creation time, so the age is measured from the first
event the filter saw of the user (`first_seen_ms`, default: the user's first event in the
frame). Training and serving compute it the same way.
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

from spam.event_frame import VIEW, EventFrame
from spam.windows import (
    count_per_key,
    dense_keys,
    distinct_per_key,
    earlier_count,
    mean_per_key,
    pair_keys,
    previous_in_key,
    trailing_counts,
    unique_sorted,
)

F64 = npt.NDArray[np.float64]
I64 = npt.NDArray[np.int64]

RATE_WINDOW_MS = 60_000
IMPOSSIBLE_TRAVEL_MS = 30 * 60_000
SHORT_WATCH_MS = 5_000
HOUR_MS = 3_600_000
LIKE_SHARE_PRIOR = 0.06
LIKE_SHARE_PRIOR_EVENTS = 30.0

FEATURE_NAMES: tuple[str, ...] = (
    "is_like",
    "device",
    "watch_ms",
    "watch_ratio",
    "repeat_views",
    "user_events_60s",
    "actor_events_per_hour",
    "ip_events_60s",
    "ip_distinct_users",
    "actor_distinct_reels_per_hour",
    "actor_events_per_reel",
    "user_distinct_ips",
    "user_distinct_devices",
    "user_distinct_countries",
    "fast_country_switch",
    "user_fast_country_switch_share",
    "account_age_s",
    "like_without_view",
    "actor_like_share",
    "actor_like_without_view_share",
    "actor_mean_watch_ratio",
    "actor_short_watch_share",
    "actor_gap_cv",
    "reel_burstiness",
    "reel_like_share",
    "actor_top_reel_share",
    "user_unshared_ips",
)


def extract_features(
    events: EventFrame, durations_ms: I64, first_seen_ms: I64 | None = None
) -> F64:
    """The feature matrix (events x FEATURE_NAMES), float64.

    Args:
        events: the window of events (any order).
        durations_ms: the reel's duration for each event (0: unknown).
        first_seen_ms: when the filter first saw each event's user (default: the user's
            first event in `events`).
    """
    count = len(events)
    out = np.full((count, len(FEATURE_NAMES)), np.nan, dtype=np.float64)
    if count == 0:
        return out
    user, _ = dense_keys(events.user_ids)
    reel, _ = dense_keys(events.reel_ids)
    ts = events.ts_ms
    is_view = events.kinds == VIEW
    is_like = ~is_view
    hours = max(1.0, (int(ts.max()) - int(ts.min())) / HOUR_MS)
    watch = events.watch_ms.astype(np.float64)
    durations = durations_ms.astype(np.float64)
    with np.errstate(divide="ignore", invalid="ignore"):
        ratio = np.where(is_view & (durations > 0), watch / durations, np.nan)
    everything = np.ones(count, dtype=np.bool_)
    known_ip = events.ip_hashes != 0
    known_country = events.countries != 0

    column = dict(zip(FEATURE_NAMES, range(len(FEATURE_NAMES)), strict=True))

    def put(name: str, values: npt.NDArray[np.generic]) -> None:
        out[:, column[name]] = values

    put("is_like", is_like)
    put("device", events.devices)
    put("watch_ms", np.where(is_view, watch, np.nan))
    put("watch_ratio", ratio)
    user_reel_kind = pair_keys(pair_keys(user, reel), events.kinds)
    put("repeat_views", earlier_count(user_reel_kind, ts))
    # Behaviour profiles are per actor (user, device, country): a taken-over account's own
    # history keeps its own profile; diversity features stay per user.
    actor = pair_keys(pair_keys(user, events.devices), events.countries)
    actor_events = count_per_key(actor)
    put("user_events_60s", trailing_counts(user, ts, RATE_WINDOW_MS))
    put("actor_events_per_hour", actor_events / hours)
    ip = dense_keys(events.ip_hashes)[0]
    put("ip_events_60s", np.where(known_ip, trailing_counts(ip, ts, RATE_WINDOW_MS), np.nan))
    put("ip_distinct_users", np.where(known_ip, distinct_per_key(ip, user), np.nan))
    distinct_reels = distinct_per_key(actor, reel)
    put("actor_distinct_reels_per_hour", distinct_reels / hours)
    put("actor_events_per_reel", actor_events / distinct_reels)
    put("user_distinct_ips", distinct_per_key(user, events.ip_hashes))
    put("user_distinct_devices", distinct_per_key(user, events.devices))
    put(
        "user_distinct_countries",
        distinct_per_key(user, np.where(known_country, events.countries, 0)),
    )

    previous = previous_in_key(user, ts)
    has_previous = previous >= 0
    previous_safe = np.where(has_previous, previous, 0)
    switch = (
        has_previous
        & known_country
        & (events.countries[previous_safe] != 0)
        & (events.countries[previous_safe] != events.countries)
        & (ts - ts[previous_safe] < IMPOSSIBLE_TRAVEL_MS)
    )
    put("fast_country_switch", switch)
    put("user_fast_country_switch_share", mean_per_key(user, switch.astype(np.float64), everything))

    if first_seen_ms is None:
        first_seen = np.full(int(user.max()) + 1, np.iinfo(np.int64).max, dtype=np.int64)
        np.minimum.at(first_seen, user, ts)
        first_seen_ms = first_seen[user]
    put("account_age_s", (ts - first_seen_ms) / 1000.0)

    # A like "without view": the user has no view of that reel at or before the like.
    pair = pair_keys(user, reel)
    first_view = np.full(int(pair.max()) + 1, np.iinfo(np.int64).max, dtype=np.int64)
    np.minimum.at(first_view, pair[is_view], ts[is_view])
    without_view = is_like & (first_view[pair] > ts)
    put("like_without_view", np.where(is_like, without_view, np.nan))
    put("actor_like_share", mean_per_key(actor, is_like.astype(np.float64), everything))
    put(
        "actor_like_without_view_share",
        mean_per_key(actor, without_view.astype(np.float64), is_like),
    )
    put(
        "actor_mean_watch_ratio",
        mean_per_key(actor, np.nan_to_num(ratio), is_view & ~np.isnan(ratio)),
    )
    put(
        "actor_short_watch_share",
        mean_per_key(actor, (watch < SHORT_WATCH_MS).astype(np.float64), is_view),
    )
    # Regularity: bots act on a timer, people do not.
    actor_previous = previous_in_key(actor, ts)
    actor_has_previous = actor_previous >= 0
    gap = np.where(actor_has_previous, ts - ts[np.maximum(actor_previous, 0)], 0)
    gap = gap.astype(np.float64)
    gap_mean = mean_per_key(actor, gap, actor_has_previous)
    gap_square = mean_per_key(actor, gap * gap, actor_has_previous)
    with np.errstate(invalid="ignore", divide="ignore"):
        gap_cv = np.sqrt(np.maximum(gap_square - gap_mean * gap_mean, 0.0)) / gap_mean
    put("actor_gap_cv", gap_cv)
    reel_recent = trailing_counts(reel, ts, RATE_WINDOW_MS)
    reel_per_minute = count_per_key(reel) / (hours * 60.0)
    put("reel_burstiness", reel_recent / np.maximum(reel_per_minute, 1.0 / 60.0))
    # Campaign targets: pumped reels get likes out of proportion to their views, and the
    # accounts pumping them return to the same reels. (The mean of the reel share over an
    # actor's events was tried and dropped: in a small catalog organic viewers of pumped
    # reels inherited the farms' score.)
    # Smoothed towards a typical share, so a reel with a handful of events in a short or
    # small window does not look pumped by chance.
    reel_likes = mean_per_key(reel, is_like.astype(np.float64), everything) * count_per_key(reel)
    reel_like_share = (reel_likes + LIKE_SHARE_PRIOR * LIKE_SHARE_PRIOR_EVENTS) / (
        count_per_key(reel) + LIKE_SHARE_PRIOR_EVENTS
    )
    put("reel_like_share", reel_like_share)
    actor_reel = pair_keys(actor, reel)
    top_reel_events = np.zeros(int(actor.max()) + 1, dtype=np.int64)
    np.maximum.at(top_reel_events, actor, count_per_key(actor_reel))
    put("actor_top_reel_share", top_reel_events[actor] / actor_events)
    # Addresses no other user acts from in the window: a viewer has its home line (its
    # carrier's NAT is shared by many); a bot rotating residential proxies per session
    # has one of its own per session (v3: camouflaged bots, whose sessions look organic
    # one by one).
    own_ip = known_ip & (distinct_per_key(ip, user) == 1)
    ip_count = int(ip.max()) + 1
    user_own_ip = unique_sorted(user[own_ip] * ip_count + ip[own_ip]).astype(np.int64)
    put(
        "user_unshared_ips",
        np.bincount(user_own_ip // ip_count, minlength=int(user.max()) + 1)[user],
    )
    return out
