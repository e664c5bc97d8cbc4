"""Detection delay: labelled traffic replayed through the judge's rounds in simulated time.

The service judges every `judge_interval_s`; a round takes the events that arrived since the
previous one into the history, gives the events that settled (`settle_s` after they entered
it) their final model verdict, and runs lockstep clustering every `lockstep_interval_s`
(`spam.judge_rounds`). The replay drives the same `JudgeRounds` with the service's settings
(`SpamConfig` defaults; the model and lockstep parameters it would load) on a simulated
clock: round k happens at start + k * interval and takes the events whose timestamp is
before it (an event arrives at its client timestamp; edges forward every 0.1 s, which is
left out). For each spam event removed: delay = (time of the round that removed it) - (its
timestamp); per detector, the time of the round whose model verdict flagged it ("model",
streaming verdicts) or whose lockstep run first flagged it ("lockstep", clustering: an
event the model removed earlier still counts here, with lockstep's own delay);
"lockstep_only": the removals of events the model did not flag. Beside the delays, what
the removals did to the counts: their precision, recall per family, and the organic events
removed (false-positive rate), the live counterpart of the offline judgement of the whole
run.

Simulated time leaves out the judgement's own compute time (the service reads its clock
before judging and removes after): the wall time of every judged round is measured so a
reader can add it. The replay stops once every event was admitted and has its verdict,
and lockstep ran over the last events. The replay starts with an empty history (a cold
start); `steady_state` covers the events that arrived once the history spanned its whole
window.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import numpy.typing as npt

from loadtest.spam_traffic import Family, LabelledTraffic
from spam.config import SpamConfig
from spam.event_frame import EventFrame
from spam.history import EventHistory
from spam.judge_rounds import JudgeRounds
from spam.model import SpamModel
from spam.windows import dense_keys, pair_keys, unique_sorted

BoolArray = npt.NDArray[np.bool_]
I64 = npt.NDArray[np.int64]
F64 = npt.NDArray[np.float64]
I8 = npt.NDArray[np.int8]

NOT_REMOVED = -1


class DelayBook:
    """Per event (indexed by its sequence number in the replayed stream): when it was
    removed, and when each detector flagged it (NOT_REMOVED: never)."""

    def __init__(self, events: int) -> None:
        self.removed_at_ms: I64 = np.full(events, NOT_REMOVED, dtype=np.int64)
        self.model_at_ms: I64 = np.full(events, NOT_REMOVED, dtype=np.int64)
        """The round whose (final) model verdict flagged it."""
        self.lockstep_at_ms: I64 = np.full(events, NOT_REMOVED, dtype=np.int64)
        """The round whose lockstep run first flagged it (removed by the model before, or
        not)."""
        self.first_margin: F64 = np.full(events, np.nan, dtype=np.float64)
        """The model's margin at the event's first verdict."""
        self.decided_at_ms: I64 = np.full(events, NOT_REMOVED, dtype=np.int64)
        """The round of the event's first verdict."""
        self.second_look: BoolArray = np.zeros(events, dtype=np.bool_)
        """Flagged by the model's second look (cleared by its first verdict)."""

    def record(
        self,
        round_ms: int,
        removed: I64,
        by_model: I64,
        by_lockstep: I64,
        by_second_look: I64 | None = None,
    ) -> None:
        """The round at `round_ms` removed events `removed` and flagged events `by_model`
        (model verdicts; `by_second_look` of them at its second look) and `by_lockstep`
        (first lockstep flags); sequence numbers."""
        if by_second_look is not None:
            self.second_look[by_second_look] = True
        for name, seq, what in (
            ("removed_at_ms", removed, "removed"),
            ("model_at_ms", by_model, "flagged by the model"),
            ("lockstep_at_ms", by_lockstep, "flagged by lockstep"),
        ):
            column = getattr(self, name)
            if (column[seq] != NOT_REMOVED).any():
                raise ValueError(f"an event was {what} twice")
            column[seq] = round_ms

    @property
    def removed(self) -> BoolArray:
        removed: BoolArray = self.removed_at_ms != NOT_REMOVED
        return removed

    @property
    def by_model(self) -> BoolArray:
        flagged: BoolArray = self.model_at_ms != NOT_REMOVED
        return flagged

    @property
    def by_lockstep(self) -> BoolArray:
        flagged: BoolArray = self.lockstep_at_ms != NOT_REMOVED
        return flagged

    def delays_s(self, arrival_ms: I64, at_ms: I64 | None = None) -> F64:
        """Per event: seconds from arrival to removal (or to `at_ms`; NaN: never)."""
        at = self.removed_at_ms if at_ms is None else at_ms
        delays: F64 = np.where(at != NOT_REMOVED, (at - arrival_ms) / 1000.0, np.nan).astype(
            np.float64
        )
        return delays

    def summary(
        self, arrival_ms: I64, family: I8, steady_from_ms: int | None = None
    ) -> dict[str, Any]:
        """Delays of the spam events removed, overall, per detector and per family; the
        removals' precision, recall and false-positive rate (what the live rounds did to
        the counts); the same (`steady_state`) for the events arriving from
        `steady_from_ms` on."""
        removal = self.delays_s(arrival_ms)
        model = self.delays_s(arrival_ms, self.model_at_ms)
        lockstep = self.delays_s(arrival_ms, self.lockstep_at_ms)
        spam = family != Family.ORGANIC

        def figures(where: BoolArray) -> dict[str, Any]:
            events = int(where.sum())
            removed = int((where & self.removed).sum())
            return {
                "spam_events": events,
                "removed": removed,
                "recall": round(removed / max(1, events), 5),
                "all": delay_figures(removal[where & self.removed]),
                "model": delay_figures(model[where & self.by_model]),
                "model_second_look": delay_figures(model[where & self.second_look]),
                "lockstep": delay_figures(lockstep[where & self.by_lockstep]),
                "lockstep_only": delay_figures(removal[where & self.by_lockstep & ~self.by_model]),
            }

        def removals(where: BoolArray) -> dict[str, Any]:
            """The removals' precision and what they took from organic events."""
            organic = where & ~spam
            organic_removed = int((organic & self.removed).sum())
            spam_removed = int((where & spam & self.removed).sum())
            return {
                "precision": round(spam_removed / max(1, spam_removed + organic_removed), 5),
                "organic_events": int(organic.sum()),
                "organic_removed": organic_removed,
                "false_positive_rate": round(organic_removed / max(1, int(organic.sum())), 6),
            }

        everything = np.ones(len(family), dtype=np.bool_)
        per_family = {
            Family(int(value)).name.lower(): figures(family == value)
            for value in unique_sorted(family[spam]).tolist()
        }
        steady: dict[str, Any] = {}
        if steady_from_ms is not None:
            later = arrival_ms >= steady_from_ms
            steady = {"from_ms": steady_from_ms, **figures(spam & later), **removals(later)}
        return {
            **figures(spam),
            **removals(everything),
            "per_family": per_family,
            "steady_state": steady,
        }


def delay_figures(delays_s: F64) -> dict[str, Any]:
    """How many, p50, p99 and max (observed values: the order statistic at or above)."""
    if len(delays_s) == 0:
        return {
            "events": 0,
            "p50_s": None,
            "p99_s": None,
            "max_s": None,
            "within_60_s": 0,
            "within_300_s": 0,
        }
    p50, p99 = np.quantile(delays_s, [0.5, 0.99], method="higher")
    return {
        "events": len(delays_s),
        "p50_s": round(float(p50), 1),
        "p99_s": round(float(p99), 1),
        "max_s": round(float(delays_s.max()), 1),
        # The targets: streaming verdicts within 60 s, lockstep within 5 min.
        "within_60_s": int((delays_s <= 60.0).sum()),
        "within_300_s": int((delays_s <= 300.0).sum()),
    }


@dataclass
class Replay:
    """What one replay saw: the removals, and the rounds' cost."""

    book: DelayBook
    threshold: float = 0.0
    """The model artifact's threshold margin (before the config's offset)."""
    rounds: int = 0
    decided: int = 0
    """Events given a model verdict (each once)."""
    judge_seconds: list[float] = field(default_factory=list)
    """Wall time of each judged round (model verdicts, and lockstep when it ran)."""
    lockstep_ran: list[bool] = field(default_factory=list)
    """Whether lockstep ran in each judged round."""
    history_events: list[int] = field(default_factory=list)
    """Events in the history at each judged round."""


def replay(
    model: SpamModel,
    traffic: LabelledTraffic,
    config: SpamConfig,
    on_round: Callable[[int, int], None] | None = None,
) -> Replay:
    """Replays `traffic` (sorted by time) through the judge's rounds in simulated time;
    `on_round(rounds so far, history events)` is called after every judged round."""
    events = traffic.events
    durations = traffic.durations_of(events.reel_ids)
    history = EventHistory(int(config.history_s * 1000), config.max_history_events)
    rounds = JudgeRounds(
        model,
        history,
        int(config.settle_s * 1000),
        int(config.lockstep_interval_s * 1000),
        second_look_ms=int(config.second_look_s * 1000),
        threshold_offset=config.threshold_offset,
        repeat_offender_flags=config.repeat_offender_flags,
        lockstep_reach_back_ms=int(config.lockstep_reach_back_s * 1000),
    )
    interval_ms = int(config.judge_interval_s * 1000)
    result = Replay(DelayBook(len(events)), model.threshold)
    if not len(events):
        return result
    now_ms = int(events.ts_ms[0])
    taken = 0
    while taken < len(events) or rounds.pending:
        now_ms += interval_ms
        arrived = int(np.searchsorted(events.ts_ms, now_ms, side="left"))
        fresh = np.arange(taken, arrived)
        rounds.admit(events.take(fresh), durations[fresh], now_ms)
        taken = arrived
        result.rounds += 1
        if not rounds.due(now_ms):
            continue
        started = time.perf_counter()
        judgement = rounds.judge(now_ms)
        result.judge_seconds.append(time.perf_counter() - started)
        result.lockstep_ran.append(judgement.lockstep is not None)
        result.history_events.append(len(history))
        outcome = rounds.settle(judgement)
        result.decided += int(judgement.decided.sum())
        result.book.first_margin[history.seq[judgement.decided]] = judgement.margins[
            judgement.decided
        ]
        result.book.decided_at_ms[history.seq[judgement.decided]] = now_ms
        result.book.record(
            now_ms,
            history.seq[outcome.removed],
            history.seq[outcome.model_flagged],
            history.seq[outcome.lockstep_flagged],
            history.seq[outcome.model_flagged & judgement.looked_again],
        )
        if on_round is not None:
            on_round(result.rounds, len(history))
    return result


SWEEP_OFFSETS = (0.0, 0.5, 1.0, 1.5, 2.0, 3.0)


def threshold_sweep(
    book: DelayBook, family: I8, threshold: float, offsets: tuple[float, ...] = SWEEP_OFFSETS
) -> list[dict[str, Any]]:
    """What the rounds would have removed with the model's threshold raised by each offset
    (over the artifact's `threshold`): exact without a second look, since an event's first
    verdict comes in the same round whatever the threshold, and lockstep's flags do not
    depend on the model's."""
    return [
        {
            "threshold_offset": offset,
            **_removal_figures(
                (book.first_margin >= threshold + offset) | book.by_lockstep, family
            ),
        }
        for offset in offsets
    ]


def _removal_figures(removed: BoolArray, family: I8) -> dict[str, Any]:
    """Precision, recall, spam and organic events removed, and recall per spam family, of
    one set of removals (`removed`, per event) against the events' labels."""
    spam = family != Family.ORGANIC
    organic_removed = int((removed & ~spam).sum())
    spam_removed = int((removed & spam).sum())
    return {
        "precision": round(spam_removed / max(1, spam_removed + organic_removed), 5),
        "recall": round(spam_removed / max(1, int(spam.sum())), 5),
        "spam_removed": spam_removed,
        "organic_removed": organic_removed,
        "per_family_recall": {
            Family(int(value)).name.lower(): round(float(removed[family == value].mean()), 5)
            for value in unique_sorted(family[spam]).tolist()
        },
    }


SWEEP_REPEAT_OFFENDER_FLAGS = (0, 1, 2, 3, 5)


def repeat_offenders(
    book: DelayBook, events: EventFrame, over: BoolArray, flags: int, history_ms: int
) -> BoolArray:
    """Per event: at its first verdict, its actor (user, device, country) had `flags`
    events over the threshold (`over`) decided in the hour before (that round's included):
    what `JudgeRounds` flags as a repeat offender's (`repeat_offender_flags`), up to the
    history's edge (kept by event time there, by verdict time here)."""
    decided = book.decided_at_ms != NOT_REMOVED
    if not flags or not decided.any():
        return np.zeros(len(over), dtype=np.bool_)
    actor = pair_keys(pair_keys(dense_keys(events.user_ids)[0], events.devices), events.countries)
    at = np.where(decided, book.decided_at_ms - int(book.decided_at_ms[decided].min()), 0)
    span = int(at.max()) + history_ms + 1
    flagged_keys = np.sort(actor[over & decided] * span + at[over & decided])
    key = actor * span + at
    earlier = np.searchsorted(flagged_keys, key, side="right") - np.searchsorted(
        flagged_keys, key - history_ms, side="right"
    )
    offending: BoolArray = decided & ~over & (earlier >= flags)
    return offending


def repeat_offender_sweep(
    book: DelayBook,
    traffic: LabelledTraffic,
    threshold: float,
    history_ms: int,
    offsets: tuple[float, ...] = SWEEP_OFFSETS,
    flags: tuple[int, ...] = SWEEP_REPEAT_OFFENDER_FLAGS,
) -> list[dict[str, Any]]:
    """`threshold_sweep` with repeat offenders flagged too, per threshold offset and
    `repeat_offender_flags` (0: none): exact as far as the margins are (a verdict's margin
    does not depend on earlier flags), but for the history's edge (`repeat_offenders`)."""
    rows = []
    for offset in offsets:
        over = book.first_margin >= threshold + offset
        for needed in flags:
            removed = (
                over
                | repeat_offenders(book, traffic.events, over, needed, history_ms)
                | book.by_lockstep
            )
            rows.append(
                {
                    "threshold_offset": offset,
                    "repeat_offender_flags": needed,
                    **_removal_figures(removed, traffic.family),
                }
            )
    return rows


def _wall_times(seconds: F64, sizes: I64) -> dict[str, Any]:
    cost: dict[str, Any] = {"rounds": len(seconds)}
    if len(seconds):
        p50, p99 = np.quantile(seconds, [0.5, 0.99], method="higher")
        slowest = int(np.argmax(seconds))
        cost |= {
            "p50_s": round(float(p50), 3),
            "p99_s": round(float(p99), 3),
            "max_s": round(float(seconds[slowest]), 3),
            "total_s": round(float(seconds.sum()), 1),
            "history_events_at_max": int(sizes[slowest]),
            "history_events_max": int(sizes.max()),
        }
    return cost


def report(result: Replay, traffic: LabelledTraffic, config: SpamConfig) -> dict[str, Any]:
    """The replay's figures for results/eval-spam.json."""
    seconds = np.asarray(result.judge_seconds, dtype=np.float64)
    sizes = np.asarray(result.history_events, dtype=np.int64)
    lockstep = np.asarray(result.lockstep_ran, dtype=np.bool_)
    round_cost = _wall_times(seconds, sizes) | {
        "with_lockstep": _wall_times(seconds[lockstep], sizes[lockstep]),
        "without_lockstep": _wall_times(seconds[~lockstep], sizes[~lockstep]),
    }
    events = traffic.events
    return {
        "seed": traffic.spec.seed,
        "traffic_seconds": round((int(events.ts_ms[-1]) - int(events.ts_ms[0])) / 1000)
        if len(events)
        else 0,
        "events": len(events),
        "judge_interval_s": config.judge_interval_s,
        "settle_s": config.settle_s,
        "lockstep_interval_s": config.lockstep_interval_s,
        "second_look_s": config.second_look_s,
        "history_s": config.history_s,
        "rounds": result.rounds,
        "events_decided": result.decided,
        # Steady state: events arriving once the history spans its whole window (a
        # service running for longer than history_s), apart from the cold start.
        **result.book.summary(
            events.ts_ms,
            traffic.family,
            int(events.ts_ms[0]) + int(config.history_s * 1000) if len(events) else None,
        ),
        "judge_round_wall_s": round_cost,
        "threshold_offset": config.threshold_offset,
        "repeat_offender_flags": config.repeat_offender_flags,
        "lockstep_reach_back_s": config.lockstep_reach_back_s,
        "threshold_sweep": []
        if config.second_look_s
        else threshold_sweep(result.book, traffic.family, result.threshold),
        "repeat_offender_sweep": []
        if config.second_look_s
        else repeat_offender_sweep(
            result.book, traffic, result.threshold, int(config.history_s * 1000)
        ),
    }
