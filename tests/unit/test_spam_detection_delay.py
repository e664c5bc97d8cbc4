"""The judge's incremental rounds and the detection-delay bookkeeping, on crafted traffic."""

from __future__ import annotations

from dataclasses import replace
from typing import Any, cast

import numpy as np
import pytest

from loadtest.spam_traffic import Family, LabelledTraffic, TrafficSpec
from spam.config import SpamConfig
from spam.detection_delay import (
    DelayBook,
    delay_figures,
    repeat_offender_sweep,
    replay,
    threshold_sweep,
)
from spam.event_frame import VIEW, EventFrame
from spam.features import FEATURE_NAMES, extract_features
from spam.history import EventHistory
from spam.judge_rounds import JudgeRounds
from spam.model import SpamModel
from spam.served_training import served_features
from spam.serving_threshold import choose, choose_repeat_offender_flags

START_MS = 1_800_000_000_000
WATCH = FEATURE_NAMES.index("watch_ms")
ACTOR_EVENTS = FEATURE_NAMES.index("actor_events_per_hour")
CONFIG = SpamConfig(
    judge_interval_s=10.0, settle_s=30.0, lockstep_interval_s=30.0, threshold_offset=0.0
)


class ShortWatchClassifier:
    """Stands in for the gradient-boosted trees: a view watched under 4 s is spam."""

    def decision_function(self, features: np.ndarray) -> np.ndarray:
        return np.where(features[:, WATCH] < 4_000, 1.0, -1.0)


class BusyActorClassifier:
    """A verdict that depends on the history: an actor with 3 events or more in the
    window is spam (a window under an hour counts as one hour)."""

    def decision_function(self, features: np.ndarray) -> np.ndarray:
        return np.where(features[:, ACTOR_EVENTS] >= 3, 1.0, -1.0)


def busy_actor_model() -> SpamModel:
    return SpamModel("test", FEATURE_NAMES, cast(Any, BusyActorClassifier()), 0.0)


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
    assert book.first_margin.tolist() == [1.0, -1.0, 1.0]
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


def test_an_event_removed_or_flagged_twice_is_a_bookkeeping_error() -> None:
    book = DelayBook(3)
    none = np.zeros(0, np.int64)
    book.record(10_000, np.array([1]), np.array([1]), none)
    with pytest.raises(ValueError, match="removed twice"):
        book.record(20_000, np.array([1, 2]), none, none)
    with pytest.raises(ValueError, match="flagged by the model twice"):
        book.record(20_000, none, np.array([1]), none)
    # Lockstep may flag an event the model removed before: its own delay is kept.
    book.record(30_000, none, none, np.array([1]))
    assert (book.removed_at_ms[1], book.lockstep_at_ms[1]) == (10_000, 30_000)


def test_the_threshold_sweep_removes_what_a_higher_threshold_and_lockstep_would() -> None:
    book = DelayBook(4)
    book.first_margin[:] = [2.0, 0.5, 1.2, np.nan]
    book.record(10_000, np.array([3]), np.zeros(0, np.int64), np.array([3]))
    family = np.array(
        [Family.CAMOUFLAGED, Family.ORGANIC, Family.CAMOUFLAGED, Family.LOCKSTEP], np.int8
    )
    rows = threshold_sweep(book, family, threshold=0.0, offsets=(0.0, 1.0, 1.5))
    assert [(r["precision"], r["organic_removed"]) for r in rows] == [
        (0.75, 1),
        (1.0, 0),
        (1.0, 0),
    ]
    assert [r["recall"] for r in rows] == [1.0, 1.0, round(2 / 3, 5)]
    assert rows[2]["per_family_recall"] == {"lockstep": 1.0, "camouflaged": 0.5}


def test_the_serving_offset_is_the_lowest_that_reaches_the_precision_target() -> None:
    rows = [
        {"threshold_offset": 0.0, "precision": 0.994},
        {"threshold_offset": 0.25, "precision": 0.9981},
        {"threshold_offset": 0.5, "precision": 0.9979},
        {"threshold_offset": 0.75, "precision": 0.999},
    ]
    assert choose(rows, target=0.998) == 0.25
    assert choose(rows, target=0.999) == 0.75
    assert choose(rows, target=0.9999) == 0.75  # none reaches it: the largest tried


def test_served_features_are_the_history_at_the_verdict_round() -> None:
    # Rounds at 10 s, 20 s, ...: the view at 0 s is decided at 40 s, before the same
    # user's view at 100 s arrived; that one is decided at 140 s with both in view.
    run = traffic([(1, 5, 20_000, 0, Family.ORGANIC), (1, 6, 20_000, 100_000, Family.ORGANIC)])
    served = served_features(run, CONFIG)
    assert served[:, ACTOR_EVENTS].tolist() == [1.0, 2.0]
    whole_run = extract_features(run.events, run.durations_of(run.events.reel_ids))
    assert whole_run[:, ACTOR_EVENTS].tolist() == [2.0, 2.0]


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


def rounds_over(
    judge_model: SpamModel, lockstep_interval_ms: int = 30_000
) -> tuple[EventHistory, JudgeRounds]:
    history = EventHistory(history_ms=3_600_000, max_events=100)
    return history, JudgeRounds(judge_model, history, 30_000, lockstep_interval_ms)


def test_an_event_gets_its_model_verdict_once_when_it_settles() -> None:
    history, rounds = rounds_over(model())
    assert not rounds.due(START_MS)
    assert not rounds.pending
    run = traffic([(1, 5, 3_100, 0, Family.SHORT_WATCH), (2, 6, 20_000, 0, Family.ORGANIC)])
    durations = np.full(2, 20_000, np.int64)
    rounds.admit(run.events, durations, START_MS + 10_000)
    outcome = rounds.settle(rounds.judge(START_MS + 10_000))
    # Not settled yet: no verdict, nothing removed; a later round has work.
    assert not outcome.judgement.decided.any()
    assert not outcome.removed.any()
    assert rounds.pending
    assert not rounds.due(START_MS + 30_000)
    assert rounds.due(START_MS + 40_000)
    outcome = rounds.settle(rounds.judge(START_MS + 40_000))
    assert outcome.judgement.decided.tolist() == [True, True]
    assert outcome.removed.tolist() == [True, False]
    assert history.seq.tolist() == [0, 1]
    # Both have their verdict; lockstep ran over them: nothing is left to do.
    assert not rounds.pending
    assert not rounds.due(START_MS + 90_000)
    # A new event is judged alone; the old ones are not judged again.
    later = traffic([(3, 7, 3_100, 45_000, Family.SHORT_WATCH)])
    rounds.admit(later.events, durations[:1], START_MS + 50_000)
    judgement = rounds.judge(START_MS + 80_000)
    assert judgement.decided.tolist() == [False, False, True]
    outcome = rounds.settle(judgement)
    assert outcome.removed.tolist() == [False, False, True]
    assert outcome.flagged.tolist() == [True, False, True]


def test_a_verdict_is_final_even_when_later_history_would_change_it() -> None:
    # The model calls an actor with 3 events spam. The user's first two events settle
    # before its third arrives: both stay in the counts (not re-judged later, which is
    # how late organic removals happened); the third is judged with all three.
    history, rounds = rounds_over(busy_actor_model())
    run = traffic(
        [
            (1, 5, 20_000, 0, Family.ORGANIC),
            (1, 6, 20_000, 1_000, Family.ORGANIC),
            (1, 7, 20_000, 60_000, Family.ORGANIC),
        ]
    )
    durations = np.full(3, 20_000, np.int64)
    rounds.admit(run.events.take(np.array([0, 1])), durations[:2], START_MS + 10_000)
    assert not rounds.settle(rounds.judge(START_MS + 40_000)).removed.any()
    rounds.admit(run.events.take(np.array([2])), durations[:1], START_MS + 70_000)
    outcome = rounds.settle(rounds.judge(START_MS + 100_000))
    assert outcome.judgement.decided.tolist() == [False, False, True]
    assert outcome.removed.tolist() == [False, False, True]
    assert history.model_flagged.tolist() == [False, False, True]


def test_a_second_look_judges_cleared_events_once_more_and_last() -> None:
    history = EventHistory(history_ms=3_600_000, max_events=100)
    rounds = JudgeRounds(busy_actor_model(), history, 30_000, 30_000, second_look_ms=120_000)
    run = traffic(
        [
            (1, 5, 20_000, 0, Family.CAMOUFLAGED),
            (1, 6, 20_000, 1_000, Family.CAMOUFLAGED),
            (1, 7, 20_000, 60_000, Family.CAMOUFLAGED),
            (2, 8, 20_000, 60_000, Family.ORGANIC),
        ]
    )
    durations = np.full(4, 20_000, np.int64)
    rounds.admit(run.events.take(np.array([0, 1])), durations[:2], START_MS + 10_000)
    assert not rounds.settle(rounds.judge(START_MS + 40_000)).removed.any()
    rounds.admit(run.events.take(np.array([2, 3])), durations[:2], START_MS + 70_000)
    assert rounds.settle(rounds.judge(START_MS + 100_000)).removed.tolist() == [
        False,
        False,
        True,
        False,
    ]
    # 120 s after they entered, the first two are judged again, with the third in view.
    assert not rounds.due(START_MS + 120_000)
    judgement = rounds.judge(START_MS + 130_000)
    assert judgement.looked_again.tolist() == [True, True, False, False]
    assert rounds.settle(judgement).removed.tolist() == [True, True, False, False]
    # The organic event's second look clears it again; then nothing is left to look at.
    judgement = rounds.judge(START_MS + 190_000)
    assert judgement.looked_again.tolist() == [False, False, False, True]
    assert not rounds.settle(judgement).removed.any()
    assert not rounds.pending
    assert not rounds.judge(START_MS + 400_000).looked_again.any()


def test_a_second_look_must_come_after_the_first() -> None:
    history = EventHistory(history_ms=3_600_000, max_events=100)
    with pytest.raises(ValueError, match="second look"):
        JudgeRounds(model(), history, 30_000, 30_000, second_look_ms=30_000)


def farm(users: int, first_user: int = 1) -> list[tuple[int, int, int, int, Family]]:
    """`users` accounts viewing reels 1-4 within seconds of each other (one group)."""
    return [
        (user, reel, 20_000, reel * 1_000 + user * 100, Family.LOCKSTEP)
        for user in range(first_user, first_user + users)
        for reel in range(1, 5)
    ]


def test_lockstep_runs_every_interval_and_flags_settled_events_once() -> None:
    history, rounds = rounds_over(model(flags_short_watches=False), lockstep_interval_ms=60_000)
    # Seven accounts: not a group yet (eight needed).
    first = traffic(farm(7))
    rounds.admit(first.events, np.full(len(first.events), 20_000, np.int64), START_MS + 10_000)
    outcome = rounds.settle(rounds.judge(START_MS + 10_000))
    assert outcome.judgement.lockstep is not None
    assert outcome.judgement.lockstep.groups == 0
    # The eighth account arrives; lockstep waits for its interval (60 s after its run).
    eighth = traffic(farm(1, first_user=8))
    rounds.admit(eighth.events, np.full(4, 20_000, np.int64), START_MS + 20_000)
    assert rounds.judge(START_MS + 60_000).lockstep is None
    assert rounds.due(START_MS + 70_000)
    outcome = rounds.settle(rounds.judge(START_MS + 70_000))
    assert outcome.judgement.lockstep is not None
    assert outcome.judgement.lockstep.groups == 1
    # The 28 settled events are removed though the model cleared them; the eighth
    # account's (in at 20 s) settle at 50 s: removed too.
    assert outcome.removed.sum() == 32
    assert outcome.lockstep_flagged.sum() == 32
    assert not history.model_flagged.any()
    # Flagged once: the next run removes nothing again, and nothing is left to do.
    rounds.admit(
        traffic([(50, 9, 20_000, 80_000, Family.ORGANIC)]).events,
        np.full(1, 20_000, np.int64),
        START_MS + 130_000,
    )
    outcome = rounds.settle(rounds.judge(START_MS + 160_000))
    assert outcome.judgement.lockstep is not None
    assert not outcome.lockstep_flagged.any()
    assert not outcome.removed.any()
    assert not rounds.pending


def test_lockstep_waits_for_unsettled_group_events_and_runs_again() -> None:
    history, rounds = rounds_over(model(flags_short_watches=False), lockstep_interval_ms=30_000)
    group = traffic(farm(8))
    durations = np.full(len(group.events), 20_000, np.int64)
    # Half the group enters early, half 25 s later: at 40 s, only the first half settled.
    early = group.events.user_ids <= 4
    rounds.admit(group.events.take(early), durations[early], START_MS + 10_000)
    rounds.admit(group.events.take(~early), durations[~early], START_MS + 35_000)
    outcome = rounds.settle(rounds.judge(START_MS + 40_000))
    assert outcome.removed.sum() == 16
    # Its run flagged unsettled events: lockstep is due again after its interval.
    assert rounds.pending
    assert not rounds.due(START_MS + 60_000)
    assert rounds.due(START_MS + 70_000)
    outcome = rounds.settle(rounds.judge(START_MS + 70_000))
    assert outcome.removed.sum() == 16
    assert history.removed.all()
    assert not rounds.pending


def late_lockstep_group() -> list[tuple[int, int, int, int, Family]]:
    """Eight accounts acting together on four reels, one reel a minute."""
    return [
        (user, reel, 20_000, reel * 60_000 + user * 100, Family.LOCKSTEP)
        for user in range(1, 9)
        for reel in range(1, 5)
    ]


def test_the_replay_files_a_late_lockstep_group_with_its_delay() -> None:
    # Eight accounts act together on four reels over four minutes: the group shows only
    # with the fourth reel; its first events were cleared by the model long before.
    rows = late_lockstep_group()
    run = traffic(rows)
    result = replay(model(flags_short_watches=False), run, CONFIG)
    book = result.book
    assert book.removed.all()
    assert book.by_lockstep.all()
    assert not book.by_model.any()
    assert result.decided == len(rows)
    summary = book.summary(run.events.ts_ms, run.family)
    # The first reel's events waited for the fourth reel (3 minutes) and a lockstep run.
    assert summary["lockstep"]["max_s"] > 180.0
    assert summary["lockstep"]["within_60_s"] < summary["lockstep"]["events"]
    assert summary["lockstep_only"]["events"] == len(rows)
    assert (summary["recall"], summary["precision"], summary["organic_removed"]) == (1.0, 1.0, 0)


def test_lockstep_reaches_back_only_as_far_as_configured() -> None:
    # The same late group, lockstep removing only what arrived in the last 100 s: found at
    # the run of 250.1 s (reels 1-3 settled; reel 1 in at 70.1 s, reel 2 at 130.1 s,
    # reel 3 at 190.1 s), it removes reel 3's events there and reel 4's (in at 250.1 s)
    # once they settled, at the run of 280.1 s; reels 1 and 2 stay with the model's
    # verdict (cleared).
    rows = late_lockstep_group()
    run = traffic(rows)
    result = replay(
        model(flags_short_watches=False), run, replace(CONFIG, lockstep_reach_back_s=100)
    )
    book = result.book
    late = run.events.reel_ids >= 3
    assert (book.by_lockstep == late).all()
    assert (book.removed == late).all()
    assert (book.lockstep_at_ms[run.events.reel_ids == 3] == START_MS + 250_100).all()
    assert (book.lockstep_at_ms[run.events.reel_ids == 4] == START_MS + 280_100).all()
    summary = book.summary(run.events.ts_ms, run.family)
    assert summary["lockstep"]["max_s"] < 100.0
    assert summary["recall"] == 0.5


def test_a_repeat_offenders_later_events_are_flagged_at_their_own_verdict() -> None:
    # User 1: a long watch (cleared), a short one (flagged), then long watches: with one
    # flag needed, the later long watches go too; the earlier one stays (final). User 2
    # only watches long. Views are minutes apart, so each is decided alone.
    rows = [
        (1, 5, 20_000, 0, Family.CAMOUFLAGED),
        (2, 5, 20_000, 30_000, Family.ORGANIC),
        (1, 6, 3_100, 100_000, Family.CAMOUFLAGED),
        (1, 7, 20_000, 200_000, Family.CAMOUFLAGED),
        (2, 7, 20_000, 250_000, Family.ORGANIC),
        (1, 8, 20_000, 300_000, Family.CAMOUFLAGED),
    ]
    run = traffic(rows)
    plain = replay(model(), run, CONFIG).book
    assert plain.removed.tolist() == [False, False, True, False, False, False]
    offenders = replay(model(), run, replace(CONFIG, repeat_offender_flags=1)).book
    assert offenders.removed.tolist() == [False, False, True, True, False, True]
    # Model verdicts all: removed at their own verdict round, within 40 s.
    assert (offenders.delays_s(run.events.ts_ms)[offenders.removed] <= 40.0).all()
    # Two flags needed: one is not enough.
    twice = replay(model(), run, replace(CONFIG, repeat_offender_flags=2)).book
    assert twice.removed.tolist() == plain.removed.tolist()
    # The sweep over the plain replay's margins gives what the rounds removed.
    rows_swept = repeat_offender_sweep(plain, run, 0.0, 3_600_000, (0.0,), (0, 1, 2))
    assert [r["spam_removed"] for r in rows_swept] == [1, 3, 1]
    assert [r["organic_removed"] for r in rows_swept] == [0, 0, 0]


def test_a_repeat_offender_is_an_actor_not_an_account() -> None:
    # A taken-over account: the short watches come from another device; the owner's own
    # later views are not the attacker's.
    run = traffic(
        [
            (1, 5, 3_100, 0, Family.TAKEOVER),
            (1, 6, 20_000, 100_000, Family.ORGANIC),
        ]
    )
    devices = run.events.devices.copy()
    devices[0] = 3
    events = replace(run.events, devices=devices)
    run = LabelledTraffic(events, run.family, run.reel_durations_ms, run.spec)
    book = replay(model(), run, replace(CONFIG, repeat_offender_flags=1)).book
    assert book.removed.tolist() == [True, False]


def test_repeat_offenders_need_the_fewest_flags_that_keep_the_precision_target() -> None:
    rows = [
        {"threshold_offset": 0.0, "repeat_offender_flags": 0, "precision": 0.9995},
        {"threshold_offset": 0.0, "repeat_offender_flags": 1, "precision": 0.994},
        {"threshold_offset": 0.0, "repeat_offender_flags": 2, "precision": 0.9987},
        {"threshold_offset": 0.0, "repeat_offender_flags": 3, "precision": 0.9995},
        {"threshold_offset": 0.5, "repeat_offender_flags": 1, "precision": 0.9990},
    ]
    assert choose_repeat_offender_flags(rows, 0.0, target=0.998) == 2
    assert choose_repeat_offender_flags(rows, 0.0, target=0.999) == 3
    assert choose_repeat_offender_flags(rows, 0.5, target=0.998) == 1
    assert choose_repeat_offender_flags(rows, 0.0, target=0.9999) == 0  # none: off
