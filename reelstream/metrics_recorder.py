"""Recording services' metrics pages over time, to replay them through the autoscaling policy.

`python -m reelstream.metrics_recorder --url edge-0=http://127.0.0.1:9151/metrics --seconds 60`
writes one CSV row per (scrape, replica, metric): `at_s,replica,metric,value`, where `value` is
the sample summed over labels (as the autoscaler sees it). `load_recording` reads it back as
per-replica `Scrape` series. Bounded: it stops after `--seconds`.
"""

from __future__ import annotations

import argparse
import csv
import sys
import time
from collections.abc import Sequence
from pathlib import Path

from reelstream.metrics_scrape import HttpMetricsSource, Scrape, ScrapeError, parse_metrics

DEFAULT_METRICS = (
    "process_cpu_seconds_total",
    "edge_events_accepted_total",
    "edge_journal_depth_events",
)


def record(
    urls: dict[str, str],
    out: Path,
    seconds: float,
    interval_s: float = 1.0,
    metrics: Sequence[str] = DEFAULT_METRICS,
) -> int:
    """Scrapes every URL each `interval_s` for `seconds`; returns the rows written."""
    source = HttpMetricsSource(timeout_s=min(2.0, interval_s))
    started = time.monotonic()
    rows = 0
    with out.open("w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["at_s", "replica", "metric", "value"])
        while (now := time.monotonic()) - started < seconds:
            for replica, url in urls.items():
                try:
                    values = parse_metrics(source.fetch(url))
                except ScrapeError:
                    continue  # a missing row is a missing reading on replay
                for metric in metrics:
                    if metric in values:
                        writer.writerow([f"{now - started:.3f}", replica, metric, values[metric]])
                        rows += 1
            handle.flush()
            time.sleep(max(0.0, interval_s - (time.monotonic() - now)))
    return rows


def load_recording(path: Path) -> dict[str, list[Scrape]]:
    """Replica -> its scrapes in time order, from a CSV written by `record`."""
    by_replica: dict[str, dict[float, dict[str, float]]] = {}
    with path.open(newline="") as handle:
        for row in csv.DictReader(handle):
            at_s = float(row["at_s"])
            scrapes = by_replica.setdefault(row["replica"], {})
            scrapes.setdefault(at_s, {})[row["metric"]] = float(row["value"])
    return {
        replica: [Scrape(at_s, values) for at_s, values in sorted(scrapes.items())]
        for replica, scrapes in by_replica.items()
    }


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--url", action="append", required=True, metavar="REPLICA=URL")
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--seconds", type=float, default=60.0)
    parser.add_argument("--interval", type=float, default=1.0)
    args = parser.parse_args(argv)
    urls = dict(entry.split("=", 1) for entry in args.url)
    rows = record(urls, args.out, args.seconds, args.interval)
    print(f"{rows} rows -> {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
