"""Report of the video-edge benchmark: JSON, console table, hit-ratio plot and the
generated section of docs/benchmarks.md."""

from __future__ import annotations

import dataclasses
import json
import os
import statistics
from dataclasses import dataclass
from pathlib import Path

from loadtest.bench.cache_trace import TraceSettings
from loadtest.bench.doc_sections import replace_section
from loadtest.bench.http_load import WrkResult
from loadtest.bench.settings import REPO_ROOT

PLOT_PNG = REPO_ROOT / "docs" / "bench-video-edge.png"
SECTION = "bench-video-edge"
MAIN_SHARE = 0.05


@dataclass(frozen=True)
class VideoEdgeResults:
    workers: int
    connections: int
    seconds: float
    rounds: int
    serving: dict[str, dict[str, list[WrkResult]]]
    """Every run, per segment size and server, in round order."""
    serving_origin_fetches: int
    trace: TraceSettings
    trace_requests: int
    footprint_bytes: int
    curves: dict[float, dict[str, float]]
    coalescing_origin_fetches: int
    coalescing_ok: int
    coalescing_waits: int
    coalescing_origin_fetches_workers: int
    coalescing_ok_workers: int
    load_average: float
    total_s: float

    def median(self, key: str, server: str) -> WrkResult:
        runs = sorted(self.serving[key][server], key=lambda r: r.requests_per_s)
        return runs[len(runs) // 2]

    def round_ratios(self, key: str) -> list[float]:
        """Edge/nginx req/s per round: the two ran back to back, so they saw similar noise."""
        pairs = zip(self.serving[key]["edge"], self.serving[key]["nginx"], strict=True)
        return [e.requests_per_s / n.requests_per_s if n.requests_per_s else 0.0 for e, n in pairs]

    def figures(self) -> dict[str, float]:
        main = self.curves[MAIN_SHARE]
        return {
            "edge_rps_200k": self.median("200k", "edge").requests_per_s,
            "nginx_rps_200k": self.median("200k", "nginx").requests_per_s,
            "edge_rps_1m": self.median("1m", "edge").requests_per_s,
            "nginx_rps_1m": self.median("1m", "nginx").requests_per_s,
            "edge_mbps_200k": self.median("200k", "edge").megabytes_per_s,
            "nginx_mbps_200k": self.median("200k", "nginx").megabytes_per_s,
            "edge_mbps_1m": self.median("1m", "edge").megabytes_per_s,
            "nginx_mbps_1m": self.median("1m", "nginx").megabytes_per_s,
            "edge_to_nginx_200k": statistics.median(self.round_ratios("200k")),
            "edge_to_nginx_1m": statistics.median(self.round_ratios("1m")),
            "hit_ratio": main["s3fifo"],
            "hit_ratio_lru": main["lru"],
            "hit_ratio_belady": main["belady"],
            "coalescing_origin_fetches": self.coalescing_origin_fetches,
        }


def _command() -> str:
    overrides = " ".join(
        f"{k}={v}" for k, v in sorted(os.environ.items()) if k.startswith("BENCH_")
    )
    tool = (
        "make bench-video-edge"
        if "MAKELEVEL" in os.environ
        else "python -m loadtest.bench.video_edge"
    )
    return f"{overrides} {tool}".strip()


def _rows(results: VideoEdgeResults) -> list[tuple[str, str, str, str]]:
    f = results.figures()
    rows = []
    for key, label in (("200k", "200 KB"), ("1m", "1 MB")):
        edge, nginx = results.median(key, "edge"), results.median(key, "nginx")
        ratios = results.round_ratios(key)
        rows.append(
            (
                f"hot segment {label}: req/s (MB/s), medians",
                f"{edge.requests_per_s:,.0f} ({edge.megabytes_per_s:,.0f})",
                f"nginx {nginx.requests_per_s:,.0f} ({nginx.megabytes_per_s:,.0f})",
                f"{statistics.median(ratios):.2f}x nginx, rounds "
                f"{min(ratios):.2f}-{max(ratios):.2f}x (target >= 0.5x)",
            )
        )
    rows.append(
        (
            "hit ratio, Zipf trace, cache 5%",
            f"S3-FIFO {f['hit_ratio']:.3f}",
            f"LRU {f['hit_ratio_lru']:.3f}, Belady {f['hit_ratio_belady']:.3f}",
            f"{(f['hit_ratio'] - f['hit_ratio_lru']) * 100:+.1f} points vs LRU (target >= +5)",
        )
    )
    rows.append(
        (
            "origin fetches, 1,000 concurrent misses",
            f"{results.coalescing_origin_fetches} (1 edge process)",
            f"{results.coalescing_origin_fetches_workers} ({results.workers} SO_REUSEPORT workers)",
            f"{results.coalescing_ok}/1000 answered 200, {results.coalescing_waits} coalesced",
        )
    )
    return rows


def console_table(results: VideoEdgeResults) -> str:
    header = ("measure", "edge", "reference", "verdict")
    rows = [header, *_rows(results)]
    widths = [max(len(row[i]) for row in rows) for i in range(4)]
    lines = ["  ".join(cell.ljust(widths[i]) for i, cell in enumerate(row)) for row in rows]
    lines.insert(1, "  ".join("-" * w for w in widths))
    return "\n".join(lines)


def _markdown(results: VideoEdgeResults) -> str:
    rows = "\n".join(f"| {' | '.join(row)} |" for row in _rows(results))
    trace = results.trace
    return f"""### Edge (`make bench-video-edge`)

Command: `{_command()}`. {results.workers} edge worker processes (SO_REUSEPORT) vs nginx
with {results.workers} workers serving the same files from disk; wrk, 1 thread,
{results.connections} connections, {results.rounds} alternating rounds of
{results.seconds:.0f} s; medians of each side, and the median of the per-round edge/nginx ratios
(each round runs both back to back). Load average at the end {results.load_average:.1f}
(the machine is shared: figures are noisy). Trace: {trace.reels:,} reels, Zipf
alpha {trace.zipf_alpha}, {results.trace_requests:,} requests, footprint
{results.footprint_bytes / 1e9:.1f} GB.

| measure | edge | reference | verdict |
|---|---|---|---|
{rows}

![hit ratio vs cache size]({PLOT_PNG.name})
"""


def write_plot(results: VideoEdgeResults, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    shares = sorted(results.curves)
    figure, axis = plt.subplots(figsize=(7, 4.5))
    for policy, label, style in (
        ("belady", "Belady (offline optimum)", "k--"),
        ("s3fifo", "S3-FIFO (edge cache)", "o-"),
        ("lru", "LRU", "s-"),
    ):
        axis.plot(
            [share * 100 for share in shares],
            [results.curves[share][policy] for share in shares],
            style,
            label=label,
        )
    axis.axvline(MAIN_SHARE * 100, color="grey", linewidth=0.8, linestyle=":")
    axis.set_xscale("log")
    axis.set_xlabel("cache size, % of the trace's footprint (log)")
    axis.set_ylabel("request hit ratio")
    axis.set_title(
        f"Zipf({results.trace.zipf_alpha}) short-video trace, {results.trace.reels:,} reels"
    )
    axis.grid(True, alpha=0.3)
    axis.legend()
    figure.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(path, dpi=110)
    plt.close(figure)


def write_outputs(results: VideoEdgeResults, json_path: Path) -> None:
    document = {
        **results.figures(),
        "edge_workers": results.workers,
        "coalescing_origin_fetches_workers": results.coalescing_origin_fetches_workers,
        "coalescing_waits": results.coalescing_waits,
        "serving_origin_fetches": results.serving_origin_fetches,
        "hit_ratio_curves": {f"{share:.2f}": ratios for share, ratios in results.curves.items()},
        "trace": dataclasses.asdict(results.trace),
        "serving_runs": {
            key: {
                server: [dataclasses.asdict(r) for r in runs] for server, runs in by_server.items()
            }
            for key, by_server in results.serving.items()
        },
        "command": _command(),
        "load_average_at_end": results.load_average,
        "total_s": results.total_s,
    }
    json_path.parent.mkdir(parents=True, exist_ok=True)
    json_path.write_text(json.dumps(document, indent=2) + "\n")
    write_plot(results, PLOT_PNG)
    replace_section(SECTION, _markdown(results))
