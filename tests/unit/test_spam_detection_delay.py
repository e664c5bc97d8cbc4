"""Detection-delay bookkeeping: crafted traffic replayed through the judge's rounds."""

from __future__ import annotations

from typing import Any, cast

import numpy as np
import pytest

from loadtest.spam_traffic import Family, LabelledTraffic, TrafficSpec
from spam.config import SpamConfig
from spam.detection_delay import DelayBook, delay_figures, replay
from spam.event_frame import VIEW, EventFrame
from spam.features import FEATURE_NAMES
from spam.history import EventHistory
from spam.judge_rounds import JudgeRounds
from spam.model import SpamModel

START_MS = 1_800_000_000_000
WATCH = FEATURE_NAMES.index("watch_ms")
CONFIG = SpamConfig(judge_interval_s=10.0, settle_s=30.0)


class ShortWatchClassifier:
    """Stands in for the gradient-boosted trees: a view watched under 4 s is spam."""

    def decision_function(self, features: np.ndarray) -> np.ndarray:
        return np.where(features[:, WATCH] < 4_000, 1.0, -1.0)


def model(flags_short_watches: bool = True) -> SpamModel:
    # A threshold above every margin: the model flags nothing (lockstep alone decides).
    threshold = 0.0 if flags_short_watches else 10.0
    return SpamModel("test", FEATURE_NAMES, cast(Any, ShortWatchClassifier()), threshold)


def traffic(rows: list[tuple[int, int, int, int, Family]]) -> LabelledTraffic:
    """(user, reel, watch ms, ms after START_MS, family) per view, sorted by time."""
    rows = sorted(rows, key=lambda row: row[3])
    user, reel, watch, offset, family = zip(*rows, strict=True)
    count = len(rows)
    events = EventFrame(
        reel_ids=np.array(reel, np.uint64),
        user_ids=np.array(user, np.uint64),
        kinds=np.full(count, VIEW, np.int64),
        watch_ms=np.array(watch, np.int64),
        ts_ms=START_MS + np.array(offset, np.int64),
        countries=np.zeros(count, np.uint16),
        devices=np.ones(count, np.int64),
        ip_hashes=np.arange(1, count + 1, dtype=np.uint64),
    )
    durations = np.full(200, 20_000, np.int64)
    return LabelledTraffic(events, np.array(family, np.int8), durations, TrafficSpec(seed=0))


def test_delay_is_the_removing_round_minus_arrival_including_the_settle_delay() -> None:
    # Rounds every 10 s from the first event (t = 1 s): 11 s, 21 s, 31 s, ...
    # A view at 1 s enters the history at the 11 s round, settles 30 s later: removed at
    # 41 s (delay 40 s). One at 12 s enters at 21 s, is removed at 51 s (delay 39 s).
    run = traffic(
        [
            (1, 5, 3_100, 1_000, Family.SHORT_WATCH),
            (2, 6, 20_000, 2_000, Family.ORGANIC),
            (1, 7, 3_100, 12_000, Family.SHORT_WATCH),
        ]
    )
    result = replay(model(), run, CONFIG)
    book = result.book
    assert book.removed_at_ms.tolist() == [START_MS + 41_000, -1, START_MS + 51_000]
    assert book.delays_s(run.events.ts_ms)[[0, 2]].tolist() == [40.0, 39.0]
    assert book.by_model.tolist() == [True, False, True]
    assert not book.by_lockstep.any()
    # Rounds at 11..51 s; after the last removal nothing waits to settle: the replay ends.
    assert result.rounds == 5
    summary = book.summary(run.events.ts_ms, run.family)
    assert (summary["spam_events"], summary["removed"], summary["organic_removed"]) == (2, 2, 0)
    assert summary["model"] == {
        "events": 2,
        "p50_s": 40.0,
        "p99_s": 40.0,
        "max_s": 40.0,
        "within_60_s": 2,
        "within_300_s": 2,
    }
    assert summary["lockstep"]["events"] == 0
    assert summary["per_family"]["short_watch"]["all"]["events"] == 2
    assert list(summary["per_family"]) == ["short_watch"]
    # Only the events arriving from the given time on count as the steady state.
    steady = book.summary(run.events.ts_ms, run.family, START_MS + 10_000)["steady_state"]
    assert (steady["spam_events"], steady["model"]["max_s"]) == (1, 39.0)


def test_events_caught_by_lockstep_are_filed_under_lockstep() -> None:
    # Eight accounts view the same four reels within seconds of each other: one group.
    rows = [
        (user, reel, 20_000, reel * 1_000 + user * 100, Family.LOCKSTEP)
        for user in range(1, 9)
        for reel in range(1, 5)
    ]
    rows.append((50, 9, 20_000, 3_000, Family.ORGANIC))
    run = traffic(rows)
    book = replay(model(flags_short_watches=False), run, CONFIG).book
    farm = run.family == Family.LOCKSTEP
    assert book.by_lockstep[farm].all()
    assert not book.by_model.any()
    assert not book.removed[~farm].any()
    # All arrive before the first round (t = 1.1 s + 10 s); removed at 41.1 s.
    assert set(book.removed_at_ms[farm].tolist()) == {int(run.events.ts_ms[0]) + 40_000}
    summary = book.summary(run.events.ts_ms, run.family)
    assert summary["lockstep_only"]["events"] == 32
    assert summary["lockstep"]["max_s"] == 40.0  # the first event's
    assert summary["model"]["events"] == 0


def test_an_event_removed_twice_is_a_bookkeeping_error() -> None:
    book = DelayBook(3)
    book.record(np.array([1]), 10_000, np.array([True]), np.array([False]))
    with pytest.raises(ValueError, match="removed twice"):
        book.record(np.array([1, 2]), 20_000, np.array([True, True]), np.array([False, False]))


def test_delay_figures_are_observed_values() -> None:
    figures = delay_figures(np.array([35.0, 36.0, 39.0, 120.0, 301.0]))
    assert figures == {
        "events": 5,
        "p50_s": 39.0,
        "p99_s": 301.0,
        "max_s": 301.0,
        "within_60_s": 3,
        "within_300_s": 4,
    }
    assert delay_figures(np.zeros(0))["p99_s"] is None


def test_a_round_removes_settled_flags_once_and_waits_for_unsettled_ones() -> None:
    history = EventHistory(history_ms=3_600_000, max_events=100)
    rounds = JudgeRounds(model(), history, settle_ms=30_000)
    assert not rounds.due
    run = traffic([(1, 5, 3_100, 0, Family.SHORT_WATCH)])
    durations = np.array([20_000], np.int64)
    rounds.admit(run.events, durations, START_MS + 10_000)
    outcome = rounds.settle(rounds.judge(), START_MS + 10_000)
    assert not outcome.removed.any()
    assert outcome.judgement.flagged.all()
    # Nothing new, but a flag waits to settle: the next round is still due.
    assert rounds.due
    outcome = rounds.settle(rounds.judge(), START_MS + 40_000)
    assert outcome.removed.tolist() == [True]
    assert history.seq.tolist() == [0]
    assert not rounds.due
    # Re-judged with a new event, it is flagged again but not removed again.
    organic = traffic([(2, 6, 20_000, 45_000, Family.ORGANIC)])
    rounds.admit(EventFrame.empty(), np.zeros(0, np.int64), START_MS + 50_000)
    assert not rounds.due
    rounds.admit(organic.events, durations, START_MS + 50_000)
    assert rounds.due
    outcome = rounds.settle(rounds.judge(), START_MS + 90_000)
    assert outcome.settled_flagged.tolist() == [True, False]
    assert not outcome.removed.any()
    assert history.seq.tolist() == [0, 1]
