"""Detection delay: labelled traffic replayed through the judge's rounds in simulated time.

The service judges every `judge_interval_s`; a round takes the events that arrived since the
previous one into the history and removes flagged events only `settle_s` after they
entered it (`spam.judge_rounds`). The replay drives the same `JudgeRounds` with the
service's settings (`SpamConfig` defaults: judge interval, settle delay, history window and
bound; the model and lockstep parameters it would load) on a simulated clock: round k
happens at start + k * interval and takes the events whose timestamp is before it (an event
arrives at its client timestamp; edges forward every 0.1 s, which is left out). For each
spam event removed: delay = (time of the round that removed it) - (its timestamp), filed
under the detector(s) that flagged it in that round: "model" (streaming verdicts) and
"lockstep" (clustering); an event flagged by both counts in both ("lockstep_only": the
events the model did not flag in that round).

Simulated time leaves out the judgement's own compute time (the service reads its clock
before judging and removes after): the wall time of every judged round is measured so a
reader can add it. The replay stops once every event was admitted and nothing waits to
settle, so a spam event a later round would have caught with more traffic counts as not
removed. The replay starts with an empty history (a cold start); `steady_state` covers the
spam events that arrived once the history spanned its whole window.
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
from spam.history import EventHistory
from spam.judge_rounds import JudgeRounds
from spam.model import SpamModel
from spam.windows import unique_sorted

BoolArray = npt.NDArray[np.bool_]
I64 = npt.NDArray[np.int64]
F64 = npt.NDArray[np.float64]
I8 = npt.NDArray[np.int8]

NOT_REMOVED = -1


class DelayBook:
    """Per event (indexed by its sequence number in the replayed stream): the time of the
    round that removed it and which detectors flagged it in that round."""

    def __init__(self, events: int) -> None:
        self.removed_at_ms: I64 = np.full(events, NOT_REMOVED, dtype=np.int64)
        self.by_model: BoolArray = np.zeros(events, dtype=np.bool_)
        self.by_lockstep: BoolArray = np.zeros(events, dtype=np.bool_)

    def record(self, seq: I64, round_ms: int, by_model: BoolArray, by_lockstep: BoolArray) -> None:
        """Events `seq` were removed by the round at `round_ms` (each event once)."""
        if (self.removed_at_ms[seq] != NOT_REMOVED).any():
            raise ValueError("an event was removed twice")
        self.removed_at_ms[seq] = round_ms
        self.by_model[seq] = by_model
        self.by_lockstep[seq] = by_lockstep

    @property
    def removed(self) -> BoolArray:
        removed: BoolArray = self.removed_at_ms != NOT_REMOVED
        return removed

    def delays_s(self, arrival_ms: I64) -> F64:
        """Per event: seconds from arrival to removal (NaN: never removed)."""
        delays: F64 = np.where(
            self.removed, (self.removed_at_ms - arrival_ms) / 1000.0, np.nan
        ).astype(np.float64)
        return delays

    def summary(
        self, arrival_ms: I64, family: I8, steady_from_ms: int | None = None
    ) -> dict[str, Any]:
        """Delays of the spam events removed, overall, per detector and per family, and
        (`steady_state`) of the spam events arriving from `steady_from_ms` on."""
        delays = self.delays_s(arrival_ms)
        spam = family != Family.ORGANIC

        def figures(where: BoolArray) -> dict[str, Any]:
            return {
                "spam_events": int(where.sum()),
                "removed": int((where & self.removed).sum()),
                "all": delay_figures(delays[where & self.removed]),
                "model": delay_figures(delays[where & self.by_model]),
                "lockstep": delay_figures(delays[where & self.by_lockstep]),
                "lockstep_only": delay_figures(delays[where & self.by_lockstep & ~self.by_model]),
            }

        per_family = {
            Family(int(value)).name.lower(): figures(family == value)
            for value in unique_sorted(family[spam]).tolist()
        }
        steady: dict[str, Any] = {}
        if steady_from_ms is not None:
            later = arrival_ms >= steady_from_ms
            steady = {
                "from_ms": steady_from_ms,
                **figures(spam & later),
                "organic_removed": int((~spam & later & self.removed).sum()),
            }
        return {
            **figures(spam),
            "organic_removed": int((~spam & self.removed).sum()),
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
    rounds: int = 0
    judge_seconds: list[float] = field(default_factory=list)
    """Wall time of each judged round (features, model, lockstep)."""
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
    rounds = JudgeRounds(model, history, int(config.settle_s * 1000))
    interval_ms = int(config.judge_interval_s * 1000)
    result = Replay(DelayBook(len(events)))
    if not len(events):
        return result
    now_ms = int(events.ts_ms[0])
    taken = 0
    while taken < len(events) or rounds.due:
        now_ms += interval_ms
        arrived = int(np.searchsorted(events.ts_ms, now_ms, side="left"))
        fresh = np.arange(taken, arrived)
        rounds.admit(events.take(fresh), durations[fresh], now_ms)
        taken = arrived
        result.rounds += 1
        if not rounds.due:
            continue
        started = time.perf_counter()
        judgement = rounds.judge()
        result.judge_seconds.append(time.perf_counter() - started)
        result.history_events.append(len(history))
        outcome = rounds.settle(judgement, now_ms)
        removed = outcome.removed
        result.book.record(
            history.seq[removed],
            now_ms,
            judgement.model_flagged[removed],
            judgement.lockstep.flagged[removed],
        )
        if on_round is not None:
            on_round(result.rounds, len(history))
    return result


def report(result: Replay, traffic: LabelledTraffic, config: SpamConfig) -> dict[str, Any]:
    """The replay's figures for results/eval-spam.json."""
    seconds = np.asarray(result.judge_seconds, dtype=np.float64)
    sizes = np.asarray(result.history_events, dtype=np.int64)
    round_cost: dict[str, Any] = {"rounds": len(seconds)}
    if len(seconds):
        p50, p99 = np.quantile(seconds, [0.5, 0.99], method="higher")
        slowest = int(np.argmax(seconds))
        round_cost |= {
            "p50_s": round(float(p50), 3),
            "p99_s": round(float(p99), 3),
            "max_s": round(float(seconds[slowest]), 3),
            "history_events_at_max": int(sizes[slowest]),
            "history_events_max": int(sizes.max()),
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
        "history_s": config.history_s,
        "rounds": result.rounds,
        # Steady state: events arriving once the history spans its whole window (a
        # service running for longer than history_s), apart from the cold start.
        **result.book.summary(
            events.ts_ms,
            traffic.family,
            int(events.ts_ms[0]) + int(config.history_s * 1000) if len(events) else None,
        ),
        "judge_round_wall_s": round_cost,
    }
