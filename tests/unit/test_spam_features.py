"""Spam features on small hand-made event windows."""

from __future__ import annotations

import numpy as np
import pytest

from spam.event_frame import LIKE, VIEW, EventFrame, pack_country
from spam.features import FEATURE_NAMES, extract_features
from spam.windows import distinct_per_key, earlier_count, trailing_counts

COLUMN = {name: i for i, name in enumerate(FEATURE_NAMES)}


def frame(*rows: tuple[int, int, int, int, int, str, int]) -> EventFrame:
    """rows: (reel, user, kind, watch_ms, ts_ms, country, ip)."""
    reel, user, kind, watch, ts, country, ip = zip(*rows, strict=True)
    return EventFrame(
        np.array(reel, np.uint64),
        np.array(user, np.uint64),
        np.array(kind, np.int64),
        np.array(watch, np.int64),
        np.array(ts, np.int64),
        np.array([pack_country(c) for c in country], np.uint16),
        np.full(len(reel), 2, np.int64),
        np.array(ip, np.uint64),
    )


def test_trailing_counts_look_back_over_the_window_per_key() -> None:
    keys = np.array([1, 1, 1, 2, 1])
    ts = np.array([0, 30_000, 59_000, 59_000, 120_000])
    assert trailing_counts(keys, ts, 60_000).tolist() == [1, 2, 3, 1, 1]


def test_earlier_count_and_distinct_per_key() -> None:
    keys = np.array([5, 5, 7, 5])
    assert earlier_count(keys, np.array([10, 20, 5, 15])).tolist() == [0, 2, 0, 1]
    assert distinct_per_key(keys, np.array([1, 1, 2, 3])).tolist() == [2, 2, 1, 2]


def test_watch_ratio_repeat_views_and_like_without_view() -> None:
    events = frame(
        (1, 10, VIEW, 5_000, 0, "DE", 7),
        (1, 10, VIEW, 5_000, 60_000, "DE", 7),
        (1, 10, LIKE, 0, 70_000, "DE", 7),
        (2, 10, LIKE, 0, 80_000, "DE", 7),
    )
    features = extract_features(events, np.array([10_000] * 4, np.int64))
    assert features[:2, COLUMN["watch_ratio"]].tolist() == [0.5, 0.5]
    assert np.isnan(features[2, COLUMN["watch_ratio"]])
    assert features[:2, COLUMN["repeat_views"]].tolist() == [0, 1]
    assert features[2:, COLUMN["like_without_view"]].tolist() == [0, 1]
    assert np.isnan(features[0, COLUMN["like_without_view"]])
    assert features[3, COLUMN["actor_like_without_view_share"]] == 0.5
    assert features[:, COLUMN["account_age_s"]].tolist() == [0, 60, 70, 80]


def test_country_switch_within_half_an_hour_is_impossible_travel() -> None:
    events = frame(
        (1, 10, VIEW, 5_000, 0, "DE", 7),
        (2, 10, VIEW, 5_000, 60_000, "BR", 8),
        (3, 10, VIEW, 5_000, 4_000_000, "US", 9),
    )
    features = extract_features(events, np.zeros(3, np.int64))
    assert features[:, COLUMN["fast_country_switch"]].tolist() == [0, 1, 0]
    assert features[0, COLUMN["user_distinct_countries"]] == 3
    assert features[0, COLUMN["user_distinct_ips"]] == 3


def test_per_ip_rates_ignore_unknown_ips() -> None:
    events = frame(
        (1, 10, VIEW, 5_000, 0, "DE", 0),
        (1, 11, VIEW, 5_000, 1_000, "DE", 5),
        (1, 12, VIEW, 5_000, 2_000, "DE", 5),
    )
    features = extract_features(events, np.zeros(3, np.int64))
    assert np.isnan(features[0, COLUMN["ip_events_60s"]])
    assert features[1:, COLUMN["ip_events_60s"]].tolist() == [1, 2]
    assert features[1:, COLUMN["ip_distinct_users"]].tolist() == [2, 2]


def test_pumped_reels_and_accounts_returning_to_one_reel() -> None:
    # Reel 1: four likes out of five events; reel 2: one view. User 10 spends 3 of 4 events
    # on reel 1.
    events = frame(
        (1, 10, VIEW, 5_000, 0, "DE", 7),
        (1, 10, LIKE, 0, 1_000, "DE", 7),
        (1, 11, LIKE, 0, 2_000, "DE", 8),
        (1, 12, LIKE, 0, 3_000, "DE", 9),
        (1, 13, LIKE, 0, 4_000, "DE", 9),
        (2, 10, VIEW, 5_000, 5_000, "DE", 7),
        (3, 10, VIEW, 5_000, 6_000, "DE", 7),
    )
    features = extract_features(events, np.array([10_000] * 7, np.int64))
    share = features[:, COLUMN["reel_like_share"]]
    # Smoothed towards 6 % with the weight of 30 events.
    assert share[0] == pytest.approx((4 + 0.06 * 30) / (5 + 30))
    assert share[5] == pytest.approx((0 + 0.06 * 30) / (1 + 30))
    assert share[0] > share[5]
    assert features[0, COLUMN["actor_top_reel_share"]] == pytest.approx(2 / 4)
    assert features[2, COLUMN["actor_top_reel_share"]] == 1.0


def test_unshared_addresses_are_counted_per_user() -> None:
    # User 10: a home line (7) and a carrier NAT it shares with user 11 (5); user 12: a new
    # proxy address per session (1, 2, 3); user 13: an unknown address only.
    events = frame(
        (1, 10, VIEW, 5_000, 0, "DE", 7),
        (2, 10, VIEW, 5_000, 1_000, "DE", 5),
        (3, 11, VIEW, 5_000, 2_000, "DE", 5),
        (4, 12, VIEW, 5_000, 3_000, "DE", 1),
        (5, 12, VIEW, 5_000, 900_000, "DE", 2),
        (6, 12, VIEW, 5_000, 1_800_000, "DE", 3),
        (7, 13, VIEW, 5_000, 4_000, "DE", 0),
    )
    features = extract_features(events, np.zeros(7, np.int64))
    assert features[:, COLUMN["user_unshared_ips"]].tolist() == [1, 1, 0, 3, 3, 3, 0]
