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
"""

from __future__ import annotations

import argparse
import logging
import sys
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Literal, Protocol

from reelstream.autoscale_policy import (
    AutoscalePolicy,
    Autoscaler,
    Decision,
    MetricReading,
    MetricTarget,
    RatePolicy,
    ScalingRules,
)
from reelstream.logs import configure_logging
from reelstream.metrics_scrape import (
    HttpMetricsSource,
    MetricsSource,
    Scrape,
    ScrapeError,
    parse_metrics,
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

    def policy(self) -> AutoscalePolicy:
        return AutoscalePolicy(
            self.min_replicas,
            self.max_replicas,
            tuple(MetricTarget(s.name, s.target) for s in self.signals),
            tolerance=self.tolerance,
            scale_down=ScalingRules(self.scale_down_window_s, (RatePolicy("percent", 100, 15.0),)),
        )


CPU = "process_cpu_seconds_total"
LOCAL_MAX_EDGES = 10
LOCAL_MAX_COUNTERS = 8


def default_tiers(
    max_edges: int = 8, shards: int = 2, min_counters: int = 0, max_counters: int = 0
) -> tuple[TierSpec, ...]:
    """Edges sized on CPU, intake rate and journal depth; counter processes on CPU, backlog,
    latency.

    Counter processes are pinned to `shards` (min = max: their decisions only report the
    pressure) unless `max_counters` is given; then they range over
    [`min_counters` or 1, `max_counters`], resized through the shard handoff.
    """
    edge = TierSpec(
        "edge",
        (
            SignalSpec("cpu_cores", "rate", CPU, 0.6),
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

    def run_round(self) -> list[TierRound]:
        """One scrape-decide-act pass over every tier."""
        return [self._round(tier) for tier in self.tiers]

    def _round(self, tier: TierSpec) -> TierRound:
        replicas = self.directory.replicas(tier.name)
        now = self.clock()
        readings = self._readings(tier, replicas, now)
        decision = self._scalers[tier.name].decide(now, len(replicas), readings)
        result = TierRound(tier.name, decision, readings)
        if decision.desired != decision.current and self.actuator is not None:
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
        "--targets",
        action="append",
        default=[],
        metavar="TIER=URL[,URL...]",
        help="scrape these metrics URLs instead of the local stack (implies --dry-run)",
    )
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
    configure_logging("autoscaler")
    directory: ReplicaDirectory
    actuator: ReplicaActuator | None
    if args.targets:
        directory, actuator = _parse_targets(args.targets), None
        shards = len(directory.replicas("counter")) or 1
    else:
        from reelstream import local_scaling

        stack_directory = local_scaling.LocalStackDirectory()
        directory = stack_directory
        actuator = None if args.dry_run else local_scaling.LocalStackActuator()
        shards = max(1, len(stack_directory.replicas("counter")))
    edge, counter = default_tiers(
        max_edges=args.max_edges,
        shards=shards,
        min_counters=args.min_counters,
        max_counters=args.max_counters,
    )
    edge = TierSpec(edge.name, edge.signals, args.min_edges, args.max_edges, args.scale_down_window)
    counter = TierSpec(
        counter.name,
        counter.signals,
        counter.min_replicas,
        counter.max_replicas,
        args.scale_down_window,
    )
    controller = AutoscaleController((edge, counter), directory, actuator)
    rounds = 0
    try:
        while args.rounds == 0 or rounds < args.rounds:
            started = time.monotonic()
            controller.run_round()
            rounds += 1
            if args.rounds and rounds >= args.rounds:
                break
            time.sleep(max(0.0, args.interval - (time.monotonic() - started)))
    except KeyboardInterrupt:
        logger.info("autoscaler stopped", extra={"fields": {"rounds": rounds}})
    return 0


if __name__ == "__main__":
    sys.exit(main())
