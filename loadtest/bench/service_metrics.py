"""The services' own Prometheus metrics, read before and after a phase, to explain a figure.

A throughput number alone does not say where the time went; the edges' ApplyBatch latency,
the shards' group-commit and snapshot durations over the same phase usually do. Only
counters and histogram sums/counts are used (their deltas are exact); labels are summed.
"""

from __future__ import annotations

import re
import urllib.error
import urllib.request
from collections import defaultdict

SAMPLE = re.compile(r"^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{[^}]*\})?\s+([-+0-9.eE]+|NaN|[+-]Inf)$")

# (summary name, metric, kind): kind "rate" = delta per phase; "mean_ms" = delta of _sum over
# delta of _count, in ms; "gauge" = value at the end.
SUMMARIES: tuple[tuple[str, str, str], ...] = (
    ("edge_events_accepted", "edge_events_accepted_total", "rate"),
    ("edge_batches_acknowledged", "edge_batches_acknowledged_total", "rate"),
    ("edge_apply_batch_mean_ms", "edge_batch_send_seconds", "mean_ms"),
    ("edge_batch_send_errors", "edge_batch_send_errors_total", "rate"),
    ("edge_calls_per_journal_write", "edge_group_commit_calls", "mean"),
    ("edge_admission_holds", "edge_admission_holds_total", "rate"),
    ("edge_pressure_refusals", "edge_forwarding_pressure_refusals_total", "rate"),
    ("edge_journal_depth_events", "edge_journal_depth_events", "gauge"),
    ("counter_batches_applied", "counter_batches_applied_total", "rate"),
    ("counter_commit_mean_ms", "counter_commit_seconds", "mean_ms"),
    ("counter_snapshots", "counter_snapshot_seconds_count", "rate"),
    ("counter_snapshot_mean_ms", "counter_snapshot_seconds", "mean_ms"),
    ("counter_reels_in_memory", "counter_reels", "gauge"),
    # Every edge and shard process together (reelstream/loop_lag.py).
    ("python_gc_collections", "reelstream_gc_pause_seconds_count", "rate"),
    ("python_gc_seconds", "reelstream_gc_pause_seconds_sum", "rate"),
)


def scrape(ports: list[int]) -> dict[str, float]:
    """Every sample of every port's /metrics, summed over labels and processes."""
    totals: dict[str, float] = defaultdict(float)
    for port in ports:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as reply:
                text = reply.read().decode()
        except (urllib.error.URLError, OSError):
            continue
        for line in text.splitlines():
            match = SAMPLE.match(line)
            if match is not None:
                totals[match.group(1)] += float(match.group(2))
    return dict(totals)


def python_gc(port: int) -> dict[str, float]:
    """One process's garbage collections so far: how many and their seconds in all (an
    endpoint that does not answer gives {})."""
    scraped = scrape([port])
    names = {
        "collections": "reelstream_gc_pause_seconds_count",
        "seconds": "reelstream_gc_pause_seconds_sum",
    }
    return {key: scraped[metric] for key, metric in names.items() if metric in scraped}


def summarize(before: dict[str, float], after: dict[str, float]) -> dict[str, float]:
    """The SUMMARIES over one phase, from two scrapes (missing metrics are left out)."""
    result: dict[str, float] = {}
    for name, metric, kind in SUMMARIES:
        if kind == "gauge":
            if metric in after:
                result[name] = after[metric]
            continue
        if kind == "rate":
            if metric in after:
                result[name] = after[metric] - before.get(metric, 0.0)
            continue
        total = after.get(f"{metric}_sum", 0.0) - before.get(f"{metric}_sum", 0.0)
        count = after.get(f"{metric}_count", 0.0) - before.get(f"{metric}_count", 0.0)
        if count > 0:
            result[name] = total / count * (1000 if kind == "mean_ms" else 1)
    return result
