"""The PNG of the counting benchmark: throughput per design, latencies, RSS over time."""

from __future__ import annotations

import math
from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # files only, no display: must precede pyplot
import matplotlib.pyplot as plt

from loadtest.bench.process_monitor import ProcessMonitor
from loadtest.bench.report import BenchResults


def _nan_to_zero(value: float) -> float:
    return 0.0 if math.isnan(value) else value


def write_plot(results: BenchResults, monitor: ProcessMonitor, path: Path) -> None:
    """Three panels: events/s (log), latency percentiles (log) with targets, RSS over time."""
    phases = results.pipeline.phases
    figure, (rates, latency, memory) = plt.subplots(1, 3, figsize=(17, 5.2))

    labels = [
        "pipeline\nzipf",
        "pipeline\nhot key",
        "naive\nCassandra",
        "Redis\nHINCRBY",
        "gRPC\nceiling",
    ]
    values = [
        phases["peak"].events_per_s,
        phases["hot_key"].events_per_s,
        results.naive.events_per_s,
        results.redis.events_per_s,
        results.ceiling.events_per_s,
    ]
    colors = ["#1f77b4", "#6baed6", "#d62728", "#ff7f0e", "#7f7f7f"]
    bars = rates.bar(labels, [max(v, 1.0) for v in values], color=colors)
    rates.set_yscale("log")
    rates.axhline(300_000, color="green", linestyle="--", linewidth=1, label="target 300k/s")
    rates.axhline(1_000_000, color="green", linestyle=":", linewidth=1, label="stretch 1M/s")
    for bar, value in zip(bars, values, strict=True):
        rates.annotate(
            f"{value:,.0f}",
            (bar.get_x() + bar.get_width() / 2, max(value, 1.0)),
            ha="center",
            va="bottom",
            fontsize=8,
        )
    rates.set_ylabel("events/s (log scale)")
    rates.set_title("Throughput, same generator, same 2 cores")
    rates.legend(fontsize=8, loc="upper left")

    names = [
        "ack\npeak",
        "ack\nhalf rate",
        "freshness\npeak",
        "freshness\nhalf rate",
        "freshness\nhot key",
    ]
    p50 = [
        phases["peak"].ack_p50_ms,
        phases["half_rate"].ack_p50_ms,
        phases["peak"].freshness_p50_ms,
        phases["half_rate"].freshness_p50_ms,
        phases["hot_key"].freshness_p50_ms,
    ]
    p99 = [
        phases["peak"].ack_p99_ms,
        phases["half_rate"].ack_p99_ms,
        phases["peak"].freshness_p99_ms,
        phases["half_rate"].freshness_p99_ms,
        phases["hot_key"].freshness_p99_ms,
    ]
    positions = range(len(names))
    latency.bar(
        [p - 0.2 for p in positions],
        [max(_nan_to_zero(v), 0.1) for v in p50],
        0.4,
        label="p50",
        color="#9ecae1",
    )
    latency.bar(
        [p + 0.2 for p in positions],
        [max(_nan_to_zero(v), 0.1) for v in p99],
        0.4,
        label="p99",
        color="#08519c",
    )
    latency.set_xticks(list(positions), names, fontsize=8)
    latency.set_yscale("log")
    latency.axhline(25, color="green", linestyle="--", linewidth=1, label="ack p99 target 25 ms")
    latency.axhline(
        1000, color="purple", linestyle="--", linewidth=1, label="freshness p99 target 1 s"
    )
    latency.set_ylabel("ms (log scale)")
    latency.set_title("Pipeline latencies")
    latency.legend(fontsize=8, loc="upper left")

    for spec_name in sorted(results.pipeline.rss):
        series = monitor.rss_series(spec_name)
        memory.plot([t for t, _ in series], [m for _, m in series], label=spec_name)
    memory.axhline(1024, color="red", linestyle="--", linewidth=1, label="1 GiB limit")
    for window in monitor.phases:
        if window.label.startswith("pipeline-") and window.label != "pipeline-run":
            start, end = window.start - monitor.origin, window.end - monitor.origin
            memory.axvspan(start, end, alpha=0.08, color="gray")
    memory.set_xlabel("seconds since the benchmark started (shaded: pipeline phases)")
    memory.set_ylabel("RSS MiB")
    memory.set_title("Peak RSS of edge and shard processes")
    memory.legend(fontsize=8, loc="upper left")

    figure.suptitle(
        f"bench-counters, {results.started_at}, {results.machine.get('nproc')} cores "
        f"{results.machine.get('cpu_model')}, {results.settings.seconds:.0f} s phases",
        fontsize=10,
    )
    figure.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(path, dpi=110)
    plt.close(figure)
