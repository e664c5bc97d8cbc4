"""`python -m loadtest.bench.video_summary` (the last step of `make bench-video`): the
issue-4 figures of both video benchmarks in one file, `results/bench-video.json`.

Reads what the two parts wrote (`results/bench-video-transcode.json` from
`make bench-video-transcode`, `results/bench-video-edge.json` from `make bench-video-edge`)
and fails, naming the part to run, when a file or a figure is missing. Each part stays
runnable alone; this step only gathers.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Mapping
from pathlib import Path

from loadtest.bench.settings import REPO_ROOT

RESULTS = REPO_ROOT / "results"
OUT_JSON = RESULTS / "bench-video.json"
# The figures issue 4 asks for, by the part that measures them.
PARTS: dict[str, tuple[str, ...]] = {
    "bench-video-edge": (
        "edge_rps_200k",
        "nginx_rps_200k",
        "edge_rps_1m",
        "nginx_rps_1m",
        "hit_ratio",
        "hit_ratio_lru",
        "hit_ratio_belady",
        "coalescing_origin_fetches",
    ),
    "bench-video-transcode": (
        "ladder_single_process_s",
        "ladder_per_rung_s",
        "ladder_bare_ffmpeg_s",
        "first_rung_s",
    ),
}
# Figures kept beside them: the ratios the targets are stated in.
EXTRA: dict[str, tuple[str, ...]] = {
    "bench-video-edge": ("edge_to_nginx_200k", "edge_to_nginx_1m", "edge_mbps_200k",
                         "nginx_mbps_200k", "edge_mbps_1m", "nginx_mbps_1m"),
    "bench-video-transcode": ("ladder_origin_s", "realtime_factor", "single_vs_per_rung_speedup",
                              "origin_overhead_ratio", "single_vs_per_rung_cpu_ratio",
                              "origin_overhead_cpu_ratio"),
}  # fmt: skip


class MissingResults(Exception):
    """A part's results file or one of its figures is absent."""


def gather(results_dir: Path = RESULTS) -> dict[str, object]:
    """The required figures of every part, plus their ratios and where each came from."""
    summary: dict[str, object] = {}
    sources: dict[str, str] = {}
    for part, keys in PARTS.items():
        path = results_dir / f"{part}.json"
        try:
            figures: Mapping[str, object] = json.loads(path.read_text())
        except FileNotFoundError as exc:
            raise MissingResults(f"{path.name} is missing: run `make {part}`") from exc
        missing = [key for key in keys if key not in figures]
        if missing:
            raise MissingResults(f"{path.name} lacks {missing}: run `make {part}` again")
        for key in (*keys, *EXTRA[part]):
            if key in figures:
                summary[key] = figures[key]
        sources[part] = path.name
    summary["sources"] = sources
    return summary


def main() -> int:
    try:
        summary = gather()
    except MissingResults as exc:
        print(f"bench-video: {exc}", file=sys.stderr)
        return 1
    OUT_JSON.parent.mkdir(parents=True, exist_ok=True)
    OUT_JSON.write_text(json.dumps(summary, indent=2) + "\n")
    for key, value in summary.items():
        if key != "sources":
            print(f"{key:<32} {value}")
    print(f"wrote {OUT_JSON.relative_to(REPO_ROOT)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
