"""The autoscaling controller: scrape each tier's replicas, ask the policy, log, act.

One round (`AutoscaleController.run_round`), every `interval_s`:
1. list the tier's replicas and their `/metrics` URLs (a `ReplicaDirectory`);
2. scrape each one; turn pages into per-replica signals (`SignalSpec`): a gauge as it is, a
   counter as its rate since the previous scrape of that replica, a histogram as its mean
   since then (a replica scraped for the first time, or whose counter went backwards because
   it restarted, has no rate yet and counts as "missing", like an unready pod in the HPA);
3. ask the tier's `Autoscaler` (the HPA algorithm, `reelstream/autoscale_policy.py`);
4. log the decision with its reason; unless dry-running, tell the `ReplicaActuator` to
   start or stop replicas, and un-record the scale event if that fails.

`python -m reelstream.autoscaler` (or `reelstream autoscale`) runs it against the local stack
(`reelstream/local_scaling.py`) or against listed metrics URLs (`--targets`, dry-run only).
`reelstream up` starts it with `--supervised`, as a process of the stack: it then takes its
bounds from the stack's bounds file before every round (`reelstream/scaling_bounds.py`; the
operator's `scale` and `drain` move them), holds the scaling lock while a round runs, stops
between rounds on SIGTERM, and exits by itself when the stack it was started for is gone.
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import logging
import re
import signal
import sys
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from contextlib import AbstractContextManager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal, Protocol

from reelstream.autoscale_policy import (
    AutoscalePolicy,
    Autoscaler,
    Decision,
    MetricReading,
    MetricTarget,
    RatePolicy,
    ScalingRules,
    default_scale_up,
)
from reelstream.logs import configure_logging
from reelstream.metrics_scrape import (
    HttpMetricsSource,
    MetricsSource,
    Scrape,
    ScrapeError,
    parse_metrics,
)
from reelstream.scaling_bounds import (
    EDGE_CPU_TARGET,
    LOCAL_MAX_COUNTERS,
    LOCAL_MAX_EDGES,
    StackBounds,
    scaling_lock,
)

logger = logging.getLogger(__name__)

SignalKind = Literal["gauge", "rate", "mean"]


@dataclass(frozen=True)
class SignalSpec:
    """A per-replica number derived from a metrics page, with its target per replica."""

    name: str
    kind: SignalKind
    metric: str
    """Sample name: the gauge, the counter (`..._total`), or the histogram base name."""
    target: float

    def read(self, previous: Scrape | None, latest: Scrape) -> float | None:
        """This replica's value, or None when it cannot be told yet."""
        if self.kind == "gauge":
            return latest.values.get(self.metric)
        if previous is None or latest.at_s <= previous.at_s:
            return None
        if self.kind == "rate":
            now, before = latest.values.get(self.metric), previous.values.get(self.metric)
            if now is None or before is None or now < before:
                return None  # unknown, or the process restarted and its counter reset
            return (now - before) / (latest.at_s - previous.at_s)
        sums = _delta(previous, latest, f"{self.metric}_sum")
        counts = _delta(previous, latest, f"{self.metric}_count")
        if sums is None or counts is None:
            return None
        return sums / counts if counts > 0 else 0.0


def _delta(previous: Scrape, latest: Scrape, name: str) -> float | None:
    now, before = latest.values.get(name), previous.values.get(name)
    if now is None or before is None or now < before:
        return None
    return now - before


@dataclass(frozen=True)
class TierSpec:
    """A tier the controller sizes: its policy bounds and the signals it is sized on."""

    name: str
    signals: tuple[SignalSpec, ...]
    min_replicas: int
    max_replicas: int
    scale_down_window_s: float = 300.0
    tolerance: float = 0.1
    scale_up_window_s: float = 0.0
    """Scale-up stabilisation: grow only to the lowest proposal of this window (the HPA's
    `behavior.scaleUp.stabilizationWindowSeconds`; its default 0 for edges)."""

    def policy(self) -> AutoscalePolicy:
        return AutoscalePolicy(
            self.min_replicas,
            self.max_replicas,
            tuple(MetricTarget(s.name, s.target) for s in self.signals),
            tolerance=self.tolerance,
            scale_up=ScalingRules(self.scale_up_window_s, default_scale_up().policies),
            scale_down=ScalingRules(self.scale_down_window_s, (RatePolicy("percent", 100, 15.0),)),
        )


COUNTER_SCALE_UP_WINDOW_S = 30.0
"""Counter processes grow only on two rounds' agreement: every resize moves logical shards
(count reads of a moving shard wait 1.5-3 s), and a one-round blip must not cause one. In the
recorded counter series (tests/unit/test_autoscale_counter_recorded.py) a 2 s stall of calm
traffic followed by one slow commit group read as a 2.8x latency spike for one round;
without this window it scaled the counters out again after the spike (flapping)."""

CPU = "process_cpu_seconds_total"


def default_tiers(
    max_edges: int = 8,
    shards: int = 2,
    min_counters: int = 0,
    max_counters: int = 0,
    edge_cpu_cores: float = EDGE_CPU_TARGET,
) -> tuple[TierSpec, ...]:
    """Edges sized on CPU, intake rate and journal depth; counter processes on CPU, backlog,
    latency, growing only on two rounds' agreement (`COUNTER_SCALE_UP_WINDOW_S`).

    Counter processes are pinned to `shards` (min = max: their decisions only report the
    pressure) unless `max_counters` is given; then they range over
    [`min_counters` or 1, `max_counters`], resized through the shard handoff.
    """
    edge = TierSpec(
        "edge",
        (
            SignalSpec("cpu_cores", "rate", CPU, edge_cpu_cores),
            SignalSpec("events_accepted_per_s", "rate", "edge_events_accepted_total", 100_000.0),
            SignalSpec("journal_depth_events", "gauge", "edge_journal_depth_events", 200_000.0),
        ),
        min_replicas=1,
        max_replicas=max_edges,
    )
    counter = TierSpec(
        "counter",
        (
            SignalSpec("cpu_cores", "rate", CPU, 0.6),
            SignalSpec("pending_batches", "gauge", "counter_pending_batches", 64.0),
            SignalSpec("commit_seconds", "mean", "counter_commit_seconds", 0.05),
        ),
        min_replicas=(min_counters or 1) if max_counters else shards,
        max_replicas=max_counters or shards,
        scale_up_window_s=COUNTER_SCALE_UP_WINDOW_S,
    )
    return (edge, counter)


@dataclass(frozen=True)
class Replica:
    """One running process of a tier and where its metrics are."""

    name: str
    metrics_url: str


class ReplicaDirectory(Protocol):
    """Which replicas a tier has now."""

    def replicas(self, tier: str) -> list[Replica]: ...


class ReplicaActuator(Protocol):
    """Starts or stops replicas of a tier."""

    def scale(self, tier: str, current: int, desired: int) -> None:
        """Brings `tier` from `current` to `desired` replicas.

        Raises:
            ScaleRefused: this tier cannot be resized here (nothing was changed).
            RuntimeError: starting or stopping failed part-way.
        """
        ...


class ScaleRefused(RuntimeError):
    """The actuator will not resize this tier (e.g. counter shards without handoff)."""


@dataclass(frozen=True)
class StaticDirectory:
    """Fixed replica lists per tier (metrics URLs given on the command line, or tests)."""

    tiers: Mapping[str, Sequence[Replica]]

    def replicas(self, tier: str) -> list[Replica]:
        return list(self.tiers.get(tier, ()))


@dataclass
class TierRound:
    """What one round decided for one tier."""

    tier: str
    decision: Decision
    readings: dict[str, MetricReading]
    applied: bool = False
    error: str = ""
    held: str = ""
    """Why a change was decided but not made this round (`run_round(hold=...)`)."""


@dataclass
class AutoscaleController:
    """Scrapes, decides and acts for every tier, one round at a time."""

    tiers: Sequence[TierSpec]
    directory: ReplicaDirectory
    actuator: ReplicaActuator | None
    """None means dry-run: decisions are logged, nothing is started or stopped."""
    source: MetricsSource = field(default_factory=HttpMetricsSource)
    clock: Callable[[], float] = time.monotonic
    _scalers: dict[str, Autoscaler] = field(default_factory=dict, init=False)
    _last_scrapes: dict[str, Scrape] = field(default_factory=dict, init=False)

    def __post_init__(self) -> None:
        self._scalers = {tier.name: Autoscaler(tier.policy()) for tier in self.tiers}

    def set_bounds(self, tier: str, min_replicas: int, max_replicas: int) -> bool:
        """Gives `tier`'s policy new bounds, keeping its history; True if they changed."""
        scaler = self._scalers[tier]
        policy = scaler.policy
        if (policy.min_replicas, policy.max_replicas) == (min_replicas, max_replicas):
            return False
        scaler.policy = dataclasses.replace(
            policy, min_replicas=min_replicas, max_replicas=max_replicas
        )
        logger.info(
            "bounds changed",
            extra={
                "fields": {
                    "tier": tier,
                    "min": min_replicas,
                    "max": max_replicas,
                    "was": f"{policy.min_replicas}..{policy.max_replicas}",
                }
            },
        )
        return True

    def bounds(self, tier: str) -> tuple[int, int]:
        policy = self._scalers[tier].policy
        return policy.min_replicas, policy.max_replicas

    def run_round(self, hold: Mapping[str, str] | None = None) -> list[TierRound]:
        """One scrape-decide-act pass over every tier; tiers in `hold` (tier -> why) decide
        and log but change nothing this round."""
        return [self._round(tier, (hold or {}).get(tier.name, "")) for tier in self.tiers]

    def _round(self, tier: TierSpec, hold: str = "") -> TierRound:
        replicas = self.directory.replicas(tier.name)
        now = self.clock()
        readings = self._readings(tier, replicas, now)
        decision = self._scalers[tier.name].decide(now, len(replicas), readings)
        result = TierRound(tier.name, decision, readings)
        if decision.desired != decision.current and self.actuator is not None and hold:
            self._scalers[tier.name].forget_last_scale()
            result.held = hold
        elif decision.desired != decision.current and self.actuator is not None:
            try:
                self.actuator.scale(tier.name, decision.current, decision.desired)
                result.applied = True
            except (ScaleRefused, RuntimeError) as exc:
                self._scalers[tier.name].forget_last_scale()
                result.error = str(exc)
        self._log(result)
        return result

    def _readings(
        self, tier: TierSpec, replicas: list[Replica], now: float
    ) -> dict[str, MetricReading]:
        values: dict[str, list[float]] = {s.name: [] for s in tier.signals}
        missing: dict[str, int] = {s.name: 0 for s in tier.signals}
        for replica in replicas:
            key = f"{tier.name}/{replica.name}@{replica.metrics_url}"
            try:
                latest = Scrape(now, parse_metrics(self.source.fetch(replica.metrics_url)))
            except ScrapeError as exc:
                logger.warning(
                    "scrape failed",
                    extra={"fields": {"tier": tier.name, "replica": replica.name, "error": exc}},
                )
                self._last_scrapes.pop(key, None)
                for signal in tier.signals:
                    missing[signal.name] += 1
                continue
            previous = self._last_scrapes.get(key)
            self._last_scrapes[key] = latest
            for signal in tier.signals:
                value = signal.read(previous, latest)
                if value is None:
                    missing[signal.name] += 1
                else:
                    values[signal.name].append(value)
        return {name: MetricReading(name, tuple(values[name]), missing[name]) for name in values}

    def _log(self, result: TierRound) -> None:
        decision = result.decision
        averages = {
            name: (sum(r.values) / len(r.values) if r.values else None)
            for name, r in result.readings.items()
        }
        fields: dict[str, object] = {
            "tier": result.tier,
            "action": decision.action,
            "current": decision.current,
            "desired": decision.desired,
            "proposal": decision.proposal,
            "reason": decision.reason,
            "mode": "dry-run" if self.actuator is None else "act",
        }
        fields.update({f"avg_{k}": ("-" if v is None else f"{v:.4g}") for k, v in averages.items()})
        if result.error:
            fields["error"] = result.error
        if result.held:
            fields["held"] = result.held
        level = logging.WARNING if result.error else logging.INFO
        logger.log(level, "autoscale decision", extra={"fields": fields})


def _parse_targets(entries: Sequence[str]) -> StaticDirectory:
    tiers: dict[str, list[Replica]] = {}
    for entry in entries:
        tier, _, urls = entry.partition("=")
        if not urls:
            raise SystemExit(f"--targets {entry!r}: expected TIER=URL[,URL...]")
        for i, url in enumerate(u for u in urls.split(",") if u):
            tiers.setdefault(tier, []).append(Replica(f"{tier}-{i}", url))
    return StaticDirectory(tiers)


_LOGFMT_FIELD = re.compile(r'(\w+)=("(?:[^"\\]|\\.)*"|\S*)')


def last_decisions(log_file: Path, lines: int = 400) -> dict[str, dict[str, str]]:
    """The latest "autoscale decision" line's fields per tier, from the end of a log file."""
    try:
        text = log_file.read_text(errors="replace").splitlines()[-lines:]
    except FileNotFoundError:
        return {}
    found: dict[str, dict[str, str]] = {}
    for line in text:
        if 'msg="autoscale decision"' not in line:
            continue
        fields = {
            key: value[1:-1].replace('\\"', '"') if value.startswith('"') else value
            for key, value in _LOGFMT_FIELD.findall(line)
        }
        if "tier" in fields:
            found[fields["tier"]] = fields
    return found


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="reelstream autoscale",
        description="Size edges (and report counter shard pressure) with the HPA algorithm.",
    )
    parser.add_argument("--dry-run", action="store_true", help="log decisions, change nothing")
    parser.add_argument("--interval", type=float, default=15.0, help="seconds between rounds")
    parser.add_argument(
        "--rounds", type=int, default=0, help="stop after N rounds (0: until Ctrl-C)"
    )
    parser.add_argument("--max-edges", type=int, default=8)
    parser.add_argument("--min-edges", type=int, default=1)
    parser.add_argument(
        "--max-counters",
        type=int,
        default=0,
        help="resize counter processes up to N with shard handoff (0: keep the running count)",
    )
    parser.add_argument("--min-counters", type=int, default=1)
    parser.add_argument(
        "--scale-down-window", type=float, default=300.0, help="scale-down stabilisation (s)"
    )
    parser.add_argument(
        "--edge-cpu-target",
        type=float,
        default=EDGE_CPU_TARGET,
        help="CPU cores per edge to size on (lower it where the edges share few cores)",
    )
    parser.add_argument(
        "--targets",
        action="append",
        default=[],
        metavar="TIER=URL[,URL...]",
        help="scrape these metrics URLs instead of the local stack (implies --dry-run)",
    )
    parser.add_argument(
        "--supervised",
        action="store_true",
        help="run as the stack's autoscaler (`reelstream up` starts it so): bounds from the "
        "stack's bounds file, moved by `reelstream scale`; exits when the stack is gone",
    )
    # The process marker `reelstream up` puts on its processes' command lines (pid checks).
    parser.add_argument("--label", default="", help=argparse.SUPPRESS)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if not 1 <= args.min_edges <= args.max_edges:
        parser.error("need 1 <= --min-edges <= --max-edges")
    if not args.targets and args.max_edges > LOCAL_MAX_EDGES:
        # edge-10 would take counter-0's ports (gRPC 50051+N, metrics 9151+N).
        parser.error(f"the local stack has room for {LOCAL_MAX_EDGES} edges at most")
    if args.max_counters and not 1 <= args.min_counters <= args.max_counters:
        parser.error("need 1 <= --min-counters <= --max-counters")
    if not args.targets and args.max_counters > LOCAL_MAX_COUNTERS:
        # counter-10 would take the origin's ports (gRPC 50061+N, metrics 9161+N).
        parser.error(f"the local stack has room for {LOCAL_MAX_COUNTERS} counters at most")
    if args.interval < 0 or args.scale_down_window < 0:
        parser.error("--interval and --scale-down-window must be >= 0")
    if not args.edge_cpu_target > 0:
        parser.error("--edge-cpu-target must be > 0")
    if args.supervised and (args.targets or args.dry_run):
        parser.error("--supervised acts on the local stack: no --targets or --dry-run")
    configure_logging("autoscaler")
    directory: ReplicaDirectory
    actuator: ReplicaActuator | None
    round_guard: Callable[[], AbstractContextManager[object]] = contextlib.nullcontext
    before_round: RoundGate = _no_check
    if args.targets:
        directory, actuator = _parse_targets(args.targets), None
        shards = len(directory.replicas("counter")) or 1
    else:
        from reelstream import local_scaling

        stack_directory = local_scaling.LocalStackDirectory()
        directory = stack_directory
        actuator = None if args.dry_run else local_scaling.LocalStackActuator()
        shards = max(1, len(stack_directory.replicas("counter")))
        if args.supervised:
            before_round = local_scaling.SupervisedChecks(
                local_scaling.StackAnchor(), stack_directory
            )
        elif actuator is not None:
            running = local_scaling.supervised_autoscaler_pid()
            if running is not None:
                parser.error(
                    f"the stack's own autoscaler (pid {running}, started by `make up`) is "
                    "running: watch it with `make logs SERVICE=autoscaler`, run this with "
                    "--dry-run, or restart the stack with `make up AUTOSCALE=0` first"
                )
        if actuator is not None:
            round_guard = scaling_lock
    edge, counter = default_tiers(
        max_edges=args.max_edges,
        shards=shards,
        min_counters=args.min_counters,
        max_counters=args.max_counters,
        edge_cpu_cores=args.edge_cpu_target,
    )
    edge = dataclasses.replace(
        edge,
        min_replicas=args.min_edges,
        max_replicas=args.max_edges,
        scale_down_window_s=args.scale_down_window,
    )
    counter = dataclasses.replace(counter, scale_down_window_s=args.scale_down_window)
    controller = AutoscaleController((edge, counter), directory, actuator)
    return _run(controller, args.interval, args.rounds, round_guard, before_round)


RoundGate = Callable[["AutoscaleController"], tuple[str, dict[str, str]]]
"""Before a round: (why to stop, or ""; tiers to hold this round -> why)."""


def _no_check(controller: AutoscaleController) -> tuple[str, dict[str, str]]:
    return "", {}


def apply_bounds(controller: AutoscaleController, bounds: StackBounds) -> None:
    """Gives each tier of `controller` the bounds the stack's bounds file sets."""
    for tier in ("edge", "counter"):
        tier_bounds = bounds.tier(tier)
        controller.set_bounds(tier, tier_bounds.min_replicas, tier_bounds.max_replicas)


def _run(
    controller: AutoscaleController,
    interval_s: float,
    max_rounds: int,
    round_guard: Callable[[], AbstractContextManager[object]],
    before_round: RoundGate,
) -> int:
    """Rounds every `interval_s` until `max_rounds`, Ctrl-C, SIGTERM (between rounds: a
    resize under way finishes) or `before_round` gives a reason to stop."""
    stop = threading.Event()
    previous = signal.signal(signal.SIGTERM, lambda signum, frame: stop.set())
    rounds = 0
    reason = ""
    try:
        while not stop.is_set():
            started = time.monotonic()
            with round_guard():
                reason, hold = before_round(controller)
                if reason:
                    break
                controller.run_round(hold)
            rounds += 1
            if max_rounds and rounds >= max_rounds:
                reason = f"{max_rounds} rounds done"
                break
            stop.wait(max(0.0, interval_s - (time.monotonic() - started)))
    except KeyboardInterrupt:
        reason = "interrupted"
    finally:
        signal.signal(signal.SIGTERM, previous)
    reason = reason or ("SIGTERM" if stop.is_set() else "stopped")
    logger.info("autoscaler stopped", extra={"fields": {"rounds": rounds, "reason": reason}})
    return 0


if __name__ == "__main__":
    # Run the package's copy of this module rather than `__main__`, so that the classes
    # local_scaling imports and the logger names are the same ones.
    from reelstream import autoscaler

    sys.exit(autoscaler.main())
