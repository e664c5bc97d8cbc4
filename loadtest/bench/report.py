"""The results of one counting-benchmark run: targets, the JSON file, the console table.

`results/bench-counters.json` carries the keys the issue asks for (pipeline, naive
Cassandra, Redis and ceiling events/s, hot-key events/s, freshness p99, acknowledgment p99,
duration) plus everything the markdown report and the plot are drawn from.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from loadtest.bench.figures import PhaseFigures, fmt
from loadtest.bench.pipeline import PipelineOutcome
from loadtest.bench.settings import BenchSettings

GIB_MIB = 1024.0
FLAT_GROWTH_PCT = 20.0


@dataclass(frozen=True)
class TargetCheck:
    name: str
    goal: str
    measured: str
    passed: bool
    stretch: str = ""


@dataclass
class BenchResults:
    settings: BenchSettings
    machine: dict[str, str]
    started_at: str
    command: str
    ceiling: PhaseFigures
    redis: PhaseFigures
    naive: PhaseFigures
    pipeline: PipelineOutcome
    trials: dict[str, list[dict[str, float]]] = field(default_factory=dict)
    quiet_waits: dict[str, float] = field(default_factory=dict)
    total_run_s: float = 0.0

    @property
    def rows(self) -> list[PhaseFigures]:
        phases = self.pipeline.phases
        return [
            phases["peak"],
            phases["half_rate"],
            phases["hot_key"],
            self.naive,
            self.redis,
            self.ceiling,
        ]


def _ratio(numerator: float, denominator: float) -> float:
    return numerator / denominator if denominator else math.nan


def check_targets(results: BenchResults) -> list[TargetCheck]:
    """The issue's targets, each with what was measured and PASS/MISS."""
    phases = results.pipeline.phases
    peak = phases["peak"].events_per_s
    checks = [
        TargetCheck(
            "sustained end-to-end events/s",
            ">= 300,000",
            fmt(peak),
            peak >= 300_000,
            "stretch 1,000,000: " + ("PASS" if peak >= 1_000_000 else "MISS"),
        )
    ]
    for name, baseline, factor in (
        ("vs naive Cassandra counters", results.naive.events_per_s, 30.0),
        ("vs per-event Redis HINCRBY", results.redis.events_per_s, 2.0),
    ):
        ratio = _ratio(peak, baseline)
        checks.append(TargetCheck(name, f">= {factor:.0f}x", f"{ratio:.2f}x", ratio >= factor))
    share = _ratio(peak, results.ceiling.events_per_s)
    checks.append(
        TargetCheck(
            "share of the do-nothing ceiling",
            ">= 25%",
            f"{share:.1%}",
            share >= 0.25,
            "stretch 50%: " + ("PASS" if share >= 0.5 else "MISS"),
        )
    )
    hot = _ratio(phases["hot_key"].events_per_s, peak)
    checks.append(TargetCheck("hot key vs spread rate", ">= 90%", f"{hot:.1%}", hot >= 0.9))
    fresh = phases["peak"].freshness_p99_ms
    checks.append(
        TargetCheck("freshness p99 (at peak)", "<= 1,000 ms", f"{fmt(fresh)} ms", fresh <= 1000)
    )
    ack = phases["half_rate"].ack_p99_ms
    checks.append(
        TargetCheck("ack p99 at half the peak rate", "<= 25 ms", f"{fmt(ack, 1)} ms", ack <= 25)
    )
    rss = results.pipeline.rss
    if rss:
        worst = max(rss.values(), key=lambda r: r["peak_mib"])
        growth = max(r["growth_pct"] for r in rss.values())
        checks.append(
            TargetCheck(
                "peak RSS per edge/shard process",
                "<= 1 GiB",
                f"{worst['peak_mib']:,.0f} MiB",
                worst["peak_mib"] <= GIB_MIB,
            )
        )
        checks.append(
            TargetCheck(
                "RSS flat over the run (last vs first 10%)",
                f"growth <= {FLAT_GROWTH_PCT:.0f}%",
                f"{growth:+.0f}% (worst process)",
                growth <= FLAT_GROWTH_PCT,
            )
        )
    exact = bool(results.pipeline.exactness.get("exact"))
    checks.append(
        TargetCheck(
            "sampled counts exact after drain",
            "all equal",
            f"{results.pipeline.exactness.get('reels_checked', 0)} reels, "
            f"{'exact' if exact else 'MISMATCH'}",
            exact,
        )
    )
    return checks


def to_json(results: BenchResults) -> dict[str, Any]:
    phases = results.pipeline.phases
    peak = phases["peak"]
    return {
        "pipeline_events_per_s": peak.events_per_s,
        "naive_cassandra_events_per_s": results.naive.events_per_s,
        "redis_events_per_s": results.redis.events_per_s,
        "ceiling_events_per_s": results.ceiling.events_per_s,
        "hotkey_events_per_s": phases["hot_key"].events_per_s,
        "freshness_p99_ms": peak.freshness_p99_ms,
        "ack_p99_ms": phases["half_rate"].ack_p99_ms,
        "duration_s": results.settings.seconds,
        "pipeline_acked_events_per_s": results.pipeline.peak_acked_events_per_s,
        "freshness_p50_ms": peak.freshness_p50_ms,
        "freshness_half_rate_p99_ms": phases["half_rate"].freshness_p99_ms,
        "ack_p50_ms": phases["half_rate"].ack_p50_ms,
        "ack_p99_at_peak_ms": peak.ack_p99_ms,
        "pipeline_cassandra_writes_per_s": peak.cassandra_writes_per_s,
        "naive_cassandra_writes_per_s": results.naive.cassandra_writes_per_s,
        "ratios": {
            "vs_naive_cassandra": _ratio(peak.events_per_s, results.naive.events_per_s),
            "vs_redis": _ratio(peak.events_per_s, results.redis.events_per_s),
            "of_ceiling": _ratio(peak.events_per_s, results.ceiling.events_per_s),
            "hotkey_vs_spread": _ratio(phases["hot_key"].events_per_s, peak.events_per_s),
        },
        "targets": [vars(check) for check in check_targets(results)],
        "rss_mib": results.pipeline.rss,
        "exactness": results.pipeline.exactness,
        "drain_s": results.pipeline.drain_s,
        "settle_s": results.pipeline.settle_s,
        "phases": [row.as_dict() for row in results.rows],
        "trials": results.trials,
        "quiet_waits_s": results.quiet_waits,
        "settings": vars(results.settings),
        "machine": results.machine,
        "started_at": results.started_at,
        "command": results.command,
        "total_run_s": results.total_run_s,
    }


def _clean(value: Any) -> Any:
    """NaN is not JSON: it becomes null."""
    if isinstance(value, float) and math.isnan(value):
        return None
    if isinstance(value, dict):
        return {k: _clean(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_clean(v) for v in value]
    return value


def write_json(results: BenchResults, path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(_clean(to_json(results)), indent=2) + "\n")


def console_table(results: BenchResults) -> str:
    lines = [
        f"{'design':<28}{'scenario':<44}{'events/s':>12}{'ack p99':>10}{'fresh p99':>11}",
    ]
    for row in results.rows:
        lines.append(
            f"{row.design:<28}{row.scenario[:43]:<44}{fmt(row.events_per_s):>12}"
            f"{fmt(row.ack_p99_ms, 1):>10}{fmt(row.freshness_p99_ms):>11}"
        )
    lines.append("")
    for check in check_targets(results):
        verdict = "PASS" if check.passed else "MISS"
        lines.append(f"{verdict}  {check.name}: {check.measured} (goal {check.goal})")
    return "\n".join(lines)
