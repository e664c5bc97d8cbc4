"""`make eval-spam`: precision, recall and false-positive rate per attack family on traffic
the model never saw (other seeds, plus the held-out families), and scoring throughput.

Seeds never overlap training (11, 12) or threshold validation (13). Three kinds of runs:
- mixed: organic viewers with every family at once (seeds EVAL_SEEDS); gives the overall
  precision, recall and false-positive rate on organic events, for the shipped model (which
  never saw GEO_HOPPING or SLOW_DRIP);
- per family: organic viewers with one family alone (seed 200 + family), judged by the
  shipped model: that family's precision, recall and false-positive rate on the organic
  events of the run;
- unseen family (leave one family out): for each family, a model trained the same way on
  the six other families only, judged on that family's run; what a new attack the model
  never saw would meet.

Throughput is measured on one core (BLAS/OpenMP pools limited to one thread): the model's
scoring of a feature matrix, and beside it feature extraction and lockstep detection, in
events per second.

Detection delay and the live removals (`spam.detection_delay`): the first mixed run
replayed through the service's judge rounds in simulated time, on one core: how long spam
stays counted, and the precision, per-family recall and organic removals of what the
rounds removed (the offline figures above judge each run once, seeing all of it); the
longest stage (a judgement of up to an hour of history per judge interval).

Every stage prints a progress line with its wall time; `--leave-one-out` picks the unseen
families to train for (each a whole training without the family) or none.
"""

from __future__ import annotations

import argparse
import datetime
import json
import subprocess
import sys
import time
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
from threadpoolctl import threadpool_limits

from loadtest.spam_traffic import DEFAULT_ATTACKERS, Family, LabelledTraffic, TrafficSpec
from spam.config import SpamConfig
from spam.detection_delay import replay
from spam.detection_delay import report as delay_report
from spam.features import extract_features
from spam.judging import Judgement, judge
from spam.lockstep import detect_lockstep
from spam.model import DEFAULT_MODEL_PATH, SpamModel
from spam.training import HELD_OUT_FAMILIES, counted_traffic, train

BoolArray = npt.NDArray[np.bool_]

EVAL_SEEDS = (101, 102)
# What the figures depend on (the provenance says whether it differed from the commit).
SPAM_CODE = (
    "spam",
    "models/spam",
    "loadtest/spam_traffic.py",
    "loadtest/spam_attacks.py",
    "loadtest/spam_population.py",
)
SCORING_ROWS = 1_000_000


class Progress:
    """Progress lines on stderr with the wall time of each stage (and since the start)."""

    def __init__(self) -> None:
        self._started = time.perf_counter()
        self._stage = self._started
        self.stages: dict[str, float] = {}

    def done(self, stage: str, detail: str = "") -> float:
        now = time.perf_counter()
        seconds = now - self._stage
        self._stage = now
        self.stages[stage] = round(seconds, 1)
        print(
            f"[{now - self._started:7.1f} s] {stage}: {seconds:.1f} s {detail}".rstrip(),
            file=sys.stderr,
            flush=True,
        )
        return seconds

    @property
    def total_s(self) -> float:
        return round(time.perf_counter() - self._started, 1)


def _rates(flagged: BoolArray, spam: BoolArray) -> dict[str, float]:
    hits = int((flagged & spam).sum())
    false_hits = int((flagged & ~spam).sum())
    return {
        "precision": round(hits / max(1, hits + false_hits), 5),
        "recall": round(hits / max(1, int(spam.sum())), 5),
        "false_positive_rate": round(false_hits / max(1, int((~spam).sum())), 6),
        "events": len(spam),
        "spam_events": int(spam.sum()),
        "flagged": int(flagged.sum()),
    }


def _judge(model: SpamModel, traffic: LabelledTraffic) -> Judgement:
    events = traffic.events
    return judge(model, events, traffic.durations_of(events.reel_ids))


def _report(judgement: Judgement, spam: BoolArray) -> dict[str, Any]:
    return {
        **_rates(judgement.flagged, spam),
        "model_only": _rates(judgement.model_flagged, spam),
        "lockstep_only": _rates(judgement.lockstep.flagged, spam),
    }


def _best_rate(run: Any, rows: int, repeats: int = 3) -> float:
    best = float("inf")
    for _ in range(repeats):
        started = time.perf_counter()
        run()
        best = min(best, time.perf_counter() - started)
    return rows / best


def throughput(model: SpamModel, traffic: LabelledTraffic) -> dict[str, float]:
    events = traffic.events
    durations = traffic.durations_of(events.reel_ids)
    with threadpool_limits(1):
        features = extract_features(events, durations)
        tiled = np.tile(features, (SCORING_ROWS // len(features) + 1, 1))[:SCORING_ROWS]
        tiled = np.ascontiguousarray(tiled)
        # The scoring kernel's JIT compile is paid at model load (a service's start), not
        # per batch: outside the timed runs.
        model.warm_up()
        scoring = _best_rate(lambda: model.is_spam(tiled), len(tiled))
        extraction = _best_rate(lambda: extract_features(events, durations), len(events), 2)
        lockstep = _best_rate(
            lambda: detect_lockstep(
                events.user_ids, events.reel_ids, events.ts_ms, ip_hashes=events.ip_hashes
            ),
            len(events),
            1,
        )
    return {
        "scoring_events_per_s": round(scoring),
        "feature_extraction_events_per_s": round(extraction),
        "lockstep_events_per_s": round(lockstep),
    }


def family_run(family: Family) -> LabelledTraffic:
    """Organic viewers and `family` alone, on the family's evaluation seed."""
    spec = replace(
        TrafficSpec(seed=200 + int(family)), attackers={family: DEFAULT_ATTACKERS[family]}
    )
    return counted_traffic(spec)


def unseen_families(families: tuple[Family, ...], progress: Progress) -> dict[str, Any]:
    """Per family of `families`: a model trained without it (training and validation
    traffic hold the six others only), judged on the family's run."""
    results: dict[str, Any] = {}
    attacks = tuple(DEFAULT_ATTACKERS)
    for family in families:
        name = family.name.lower()
        others = tuple(f for f in attacks if f is not family)
        model = train(families=others)
        train_s = progress.done(f"unseen {name}: training without it")
        traffic = family_run(family)
        judgement = _judge(model, traffic)
        results[name] = {
            "trained_on": [f.name for f in others],
            **_report(judgement, traffic.family != Family.ORGANIC),
            "training_s": round(train_s, 1),
        }
        progress.done(f"unseen {name}: judged", f"recall {results[name]['recall']}")
    return results


def detection_delay(model: SpamModel, traffic: LabelledTraffic) -> dict[str, Any]:
    """`traffic` replayed through the service's judge rounds (its default settings), with
    thread pools limited to one thread: the rounds' wall times are one core's."""
    config = SpamConfig()
    started = time.perf_counter()
    every = max(1, round(600 / config.judge_interval_s))

    def progress(rounds: int, history_events: int) -> None:
        if rounds % every == 0:
            print(
                f"  detection delay: {rounds * config.judge_interval_s / 60:.0f} simulated min,"
                f" history {history_events:,} events, {time.perf_counter() - started:.0f} s",
                file=sys.stderr,
                flush=True,
            )

    with threadpool_limits(1):
        result = replay(model, traffic, config, progress)
    return delay_report(result, traffic, config)


def evaluate(
    model: SpamModel,
    leave_one_out: tuple[Family, ...] = tuple(DEFAULT_ATTACKERS),
    delay: bool = True,
) -> dict[str, Any]:
    """Every figure of results/eval-spam.json; `leave_one_out`: the families to train an
    unseen-family model for; `delay`: whether to replay for detection delay."""
    progress = Progress()
    mixed_flagged: list[BoolArray] = []
    mixed_spam: list[BoolArray] = []
    mixed_model: list[BoolArray] = []
    mixed_lockstep: list[BoolArray] = []
    first: LabelledTraffic | None = None
    for seed in EVAL_SEEDS:
        traffic = counted_traffic(TrafficSpec(seed=seed))
        first = first or traffic
        judgement = _judge(model, traffic)
        mixed_flagged.append(judgement.flagged)
        mixed_model.append(judgement.model_flagged)
        mixed_lockstep.append(judgement.lockstep.flagged)
        mixed_spam.append(traffic.family != Family.ORGANIC)
        progress.done(f"mixed seed {seed}", f"{len(traffic.events):,} events")
    spam = np.concatenate(mixed_spam)
    per_family: dict[str, Any] = {}
    for family in DEFAULT_ATTACKERS:
        traffic = family_run(family)
        judgement = _judge(model, traffic)
        per_family[family.name.lower()] = {
            "held_out_family": family in HELD_OUT_FAMILIES,
            **_report(judgement, traffic.family != Family.ORGANIC),
        }
        progress.done(f"family {family.name.lower()}", f"{len(traffic.events):,} events")
    assert first is not None
    speed = throughput(model, first)
    progress.done("throughput")
    unseen = unseen_families(leave_one_out, progress)
    delays: dict[str, Any] = {}
    if delay:
        delays = detection_delay(model, first)
        progress.done("detection delay", f"{delays['rounds']} rounds")
    return {
        "model_version": model.version,
        "threshold_margin": model.threshold,
        "seeds": list(EVAL_SEEDS),
        **_rates(np.concatenate(mixed_flagged), spam),
        "model_only": _rates(np.concatenate(mixed_model), spam),
        "lockstep_only": _rates(np.concatenate(mixed_lockstep), spam),
        "per_family": per_family,
        "leave_one_out": [f.name.lower() for f in leave_one_out],
        "unseen_family": unseen,
        **speed,
        "detection_delay": delays,
        "stage_seconds": progress.stages,
        "evaluation_seconds": progress.total_s,
    }


def _provenance() -> dict[str, Any]:
    """When and on which commit (and whether the spam code had uncommitted changes)."""

    def git(*args: str) -> str:
        try:
            return subprocess.run(
                ["git", *args], capture_output=True, text=True, check=True, timeout=10
            ).stdout.strip()
        except (OSError, subprocess.SubprocessError):
            return ""

    return {
        "date": datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"),
        "commit": git("rev-parse", "--short", "HEAD"),
        "spam_code_modified": bool(git("status", "--porcelain", "--", *SPAM_CODE)),
        "command": " ".join(["python -m spam.evaluation", *sys.argv[1:]]),
    }


def families_arg(text: str) -> tuple[Family, ...]:
    """`all`, `none` or family names separated by commas (`lockstep,slow_drip`)."""
    if text == "all":
        return tuple(DEFAULT_ATTACKERS)
    if text == "none":
        return ()
    try:
        return tuple(Family[name.strip().upper()] for name in text.split(","))
    except KeyError as exc:
        raise argparse.ArgumentTypeError(f"unknown family {exc}") from None


def _delay_line(name: str, figures: dict[str, Any]) -> str:
    if not figures["events"]:
        return f"{name} none"
    return (
        f"{name} {figures['events']:,} events p50 {figures['p50_s']} s"
        f" p99 {figures['p99_s']} s max {figures['max_s']} s;"
        f" within 60 s {figures['within_60_s'] / figures['events']:.4f},"
        f" 5 min {figures['within_300_s'] / figures['events']:.4f}"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--model", type=Path, default=DEFAULT_MODEL_PATH)
    parser.add_argument("--out", type=Path, default=Path("results/eval-spam.json"))
    parser.add_argument(
        "--leave-one-out",
        type=families_arg,
        default=tuple(DEFAULT_ATTACKERS),
        metavar="all|none|FAMILY,...",
        help="families to train an unseen-family model for (default: all 7)",
    )
    parser.add_argument(
        "--no-leave-one-out", action="store_true", help="same as --leave-one-out none"
    )
    parser.add_argument("--no-delay", action="store_true", help="skip the detection-delay replay")
    args = parser.parse_args()
    leave_one_out = () if args.no_leave_one_out else args.leave_one_out
    provenance = _provenance()
    result = evaluate(
        SpamModel.load(args.model), leave_one_out=leave_one_out, delay=not args.no_delay
    )
    result = {**provenance, **result}
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2) + "\n")
    print(f"wrote {args.out} ({result['evaluation_seconds']} s)")
    print(
        f"overall precision {result['precision']} recall {result['recall']}"
        f" FPR {result['false_positive_rate']}"
    )
    print("per family (shipped model; * = family held out of its training):")
    for name, figures in result["per_family"].items():
        mark = "*" if figures["held_out_family"] else " "
        print(
            f"  {name:12s}{mark} precision {figures['precision']:.4f}"
            f" recall {figures['recall']:.4f} FPR {figures['false_positive_rate']:.6f}"
        )
    if result["unseen_family"]:
        print("unseen family (a model trained on the six others):")
    for name, figures in result["unseen_family"].items():
        print(
            f"  {name:12s}  precision {figures['precision']:.4f}"
            f" recall {figures['recall']:.4f} FPR {figures['false_positive_rate']:.6f}"
            f" (training {figures['training_s']} s)"
        )
    print(
        f"scoring {result['scoring_events_per_s']:,} events/s/core;"
        f" features {result['feature_extraction_events_per_s']:,};"
        f" lockstep {result['lockstep_events_per_s']:,}"
    )
    delay = result["detection_delay"]
    if delay:
        _print_delay(delay)


def _print_delay(delay: dict[str, Any]) -> None:
    cost = delay["judge_round_wall_s"]
    print(
        f"live replay (seed {delay['seed']}, simulated time, judge every"
        f" {delay['judge_interval_s']} s, settle {delay['settle_s']} s, lockstep every"
        f" {delay['lockstep_interval_s']} s): {delay['removed']:,} of"
        f" {delay['spam_events']:,} spam events removed (recall {delay['recall']}),"
        f" {delay['organic_removed']:,} of {delay['organic_events']:,} organic"
        f" (FPR {delay['false_positive_rate']}); precision of removals {delay['precision']}"
    )
    for detector in ("all", "model", "lockstep", "lockstep_only"):
        print("  " + _delay_line(detector, delay[detector]))
    steady = delay["steady_state"]
    if steady:
        print(
            f"  steady state (events after the first {delay['history_s']} s of history):"
            f" recall {steady['recall']}, {steady['organic_removed']:,} organic removed"
            f" (FPR {steady['false_positive_rate']}), precision {steady['precision']}"
        )
        for detector in ("all", "model", "lockstep"):
            print("    " + _delay_line(detector, steady[detector]))
    for name, figures in delay["per_family"].items():
        print(f"  {name:12s} recall {figures['recall']:.4f} " + _delay_line("all", figures["all"]))
    if delay.get("threshold_sweep"):
        print(
            "  with the model's threshold raised by (offset: precision, recall, organic removed):"
        )
        print(
            "   "
            + "; ".join(
                f"{row['threshold_offset']}: {row['precision']}, {row['recall']},"
                f" {row['organic_removed']}"
                for row in delay["threshold_sweep"]
            )
        )
    print(
        f"  judge round wall time (one core): p50 {cost.get('p50_s')} s"
        f" p99 {cost.get('p99_s')} s max {cost.get('max_s')} s"
        f" (history up to {cost.get('history_events_max', 0):,} events);"
        f" rounds with a lockstep run: p50 {cost['with_lockstep'].get('p50_s')} s,"
        f" without: p50 {cost['without_lockstep'].get('p50_s')} s"
    )


if __name__ == "__main__":
    main()
