"""`python -m loadtest.bench.video_transcode`: the origin's ladder transcode, measured.

For one 15 s 1080x1920 30 fps clip (testsrc2 + sine, made once by ffmpeg), side by side:
- single process: the whole ladder from one ffmpeg process (`ladder_argv` without stills);
- per rung: one ffmpeg process per rung, one after another, with the same settings
  (`single_rung_argv`);
- bare ffmpeg: the origin's exact command line (ladder + stills + `-progress`) run with
  `subprocess.run` and nothing else;
- origin: what the origin does for an accepted upload, in process on uvloop: probe
  (ffprobe + one-second decode), the ffmpeg ladder with progress parsing, the measured
  master rewrite and the poster;
- first playable rung: seconds from the start of the origin's run until the first rung's
  playlist has ENDLIST and the master is rewritten (every rung advances in lockstep in one
  process, so this is close to the whole run).

Wall seconds and the CPU seconds of the child processes (user + system) are recorded: on a
shared machine CPU seconds are the steadier figure. With `BENCH_VIDEO_ROUNDS=n` every
measurement is repeated n times (order rotated) and the fastest wall time is kept. Writes
`results/bench-video-transcode.json` and the `bench-video-transcode` section of
docs/benchmarks.md, and prints a table.
"""

from __future__ import annotations

import asyncio
import json
import os
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import uvloop

from loadtest.bench.machine import describe_machine
from loadtest.bench.settings import REPO_ROOT
from loadtest.bench.video_transcode_report import console_table, write_section
from origin.config import OriginConfig
from origin.ladder import LadderPlan, plan_ladder
from origin.ladder_transcode import finalize_ladder, transcode_ladder
from origin.media_names import MASTER_PLAYLIST, rung_playlist
from origin.media_probe import SourceMedia, probe_file
from origin.transcode_command import EncoderSettings, ladder_argv, single_rung_argv
from origin.transcode_pool import probe_limits

RESULTS_JSON = REPO_ROOT / "results" / "bench-video-transcode.json"
CLIP_SECONDS = 15.0
CLIP_SIZE = (1080, 1920)
TIMEOUT_S = 900.0


@dataclass(frozen=True)
class Timing:
    wall_s: float
    cpu_s: float


def _children_cpu_s() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def make_source(path: Path) -> None:
    width, height = CLIP_SIZE
    subprocess.run(
        [
            "ffmpeg", "-v", "error", "-y",
            "-f", "lavfi", "-i", f"testsrc2=size={width}x{height}:rate=30:duration={CLIP_SECONDS}",
            "-f", "lavfi", "-i", f"sine=frequency=440:sample_rate=48000:duration={CLIP_SECONDS}",
            "-c:v", "libx264", "-preset", "veryfast", "-crf", "18", "-pix_fmt", "yuv420p",
            "-c:a", "aac", "-b:a", "128k", "-movflags", "+faststart", str(path),
        ],
        check=True,
        timeout=TIMEOUT_S,
    )  # fmt: skip


def _run_bare(argvs: Sequence[Sequence[str]]) -> Timing:
    cpu_before = _children_cpu_s()
    started = time.monotonic()
    for argv in argvs:
        subprocess.run(argv, check=True, timeout=TIMEOUT_S, stdout=subprocess.DEVNULL)
    return Timing(time.monotonic() - started, _children_cpu_s() - cpu_before)


def _fresh(folder: Path) -> Path:
    shutil.rmtree(folder, ignore_errors=True)
    folder.mkdir(parents=True)
    return folder


async def _origin_run(
    source: Path, size_bytes: int, out: Path, config: OriginConfig
) -> tuple[Timing, float]:
    """The origin's path for an accepted upload; returns its timing and the first-rung time."""
    cpu_before = _children_cpu_s()
    started = time.monotonic()
    media = await probe_file(source, size_bytes, probe_limits(config))
    plan = plan_ladder(media.width, media.height, media.frame_rate)
    first_rung: list[float] = []

    async def watch_first_rung() -> None:
        # Polls like a player would: the first rung playlist that is complete (ENDLIST).
        while not first_rung:
            for rung in plan.rungs:
                text = await asyncio.to_thread(_read_or_empty, out / rung_playlist(rung.name))
                if "#EXT-X-ENDLIST" in text:
                    first_rung.append(time.monotonic() - started)
                    break
            await asyncio.sleep(0.02)

    watcher = asyncio.create_task(watch_first_rung())
    await transcode_ladder(
        source,
        out,
        media,
        plan,
        EncoderSettings(config.x264_preset, config.ffmpeg_threads),
        TIMEOUT_S,
        on_percent=lambda _percent: None,
    )
    wall = time.monotonic() - started
    watcher.cancel()
    # A rung is playable once the master is rewritten as well: never before the run's end.
    first = max(first_rung[0], wall) if first_rung else wall
    return Timing(wall, _children_cpu_s() - cpu_before), first


def _read_or_empty(path: Path) -> str:
    try:
        return path.read_text()
    except FileNotFoundError:
        return ""


def run(rounds: int) -> dict[str, object]:
    config = OriginConfig()
    work = Path(tempfile.mkdtemp(prefix="bench-video-"))
    try:
        source = work / "source.mp4"
        print(f"making a {CLIP_SECONDS:.0f} s {CLIP_SIZE[0]}x{CLIP_SIZE[1]} source clip ...")
        make_source(source)
        media, plan = _plan(source, config)
        encoder = EncoderSettings(config.x264_preset, config.ffmpeg_threads)
        print(
            f"ladder: {', '.join(r.name for r in plan.rungs)} at {plan.frame_rate} fps,"
            f" preset {encoder.preset}, {encoder.threads} threads per encoder"
        )
        measures: dict[str, Callable[[], Timing]] = {
            "single_process": lambda: _run_bare(
                [
                    ladder_argv(
                        source, _fresh(work / "single"), media, plan, encoder,
                        with_stills=False, progress=False,
                    )
                ]
            ),
            "per_rung": lambda: _run_bare(
                [
                    single_rung_argv(source, _fresh(work / f"rung{i}"), media, plan, i, encoder)
                    for i in range(len(plan.rungs))
                ]
            ),
            "bare_ffmpeg": lambda: _run_bare(
                [ladder_argv(source, _fresh(work / "bare"), media, plan, encoder)]
            ),
        }  # fmt: skip
        best: dict[str, Timing] = {}
        first_rung_s: list[float] = []
        for round_index in range(rounds):
            names = [*measures, "origin"]
            shift = round_index % len(names)
            for name in names[shift:] + names[:shift]:
                print(f"round {round_index + 1}/{rounds}: {name} ...", flush=True)
                if name == "origin":
                    timing, first = uvloop.run(
                        _origin_run(source, source.stat().st_size, _fresh(work / "origin"), config)
                    )
                    first_rung_s.append(first)
                else:
                    timing = measures[name]()
                if name not in best or timing.wall_s < best[name].wall_s:
                    best[name] = timing
                print(f"  {timing.wall_s:.2f} s wall, {timing.cpu_s:.2f} s CPU", flush=True)
        # The bare run's output is checked to be the same ladder the origin publishes.
        finalize_ladder(work / "bare", plan)
        assert (work / "bare" / MASTER_PLAYLIST).read_text().count("STREAM-INF") == len(plan.rungs)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return {
        "clip": f"{CLIP_SECONDS:.0f} s {CLIP_SIZE[0]}x{CLIP_SIZE[1]} 30 fps, testsrc2 + sine",
        "rungs": [r.name for r in plan.rungs],
        "preset": encoder.preset,
        "ffmpeg_threads": encoder.threads,
        "rounds": rounds,
        "ladder_single_process_s": round(best["single_process"].wall_s, 3),
        "ladder_per_rung_s": round(best["per_rung"].wall_s, 3),
        "ladder_bare_ffmpeg_s": round(best["bare_ffmpeg"].wall_s, 3),
        "ladder_origin_s": round(best["origin"].wall_s, 3),
        "first_rung_s": round(min(first_rung_s), 3),
        "realtime_factor": round(CLIP_SECONDS / best["origin"].wall_s, 3),
        "single_vs_per_rung_speedup": round(
            best["per_rung"].wall_s / best["single_process"].wall_s, 3
        ),
        "origin_overhead_ratio": round(best["origin"].wall_s / best["bare_ffmpeg"].wall_s, 3),
        # The same ratios from CPU seconds: steadier than wall time on a shared machine.
        "single_vs_per_rung_cpu_ratio": round(
            best["per_rung"].cpu_s / best["single_process"].cpu_s, 3
        ),
        "origin_overhead_cpu_ratio": round(best["origin"].cpu_s / best["bare_ffmpeg"].cpu_s, 3),
        "load_average_at_end": " ".join(f"{x:.2f}" for x in os.getloadavg()),
        "cpu_s": {name: round(t.cpu_s, 3) for name, t in best.items()},
        "machine": describe_machine(),
    }


def _plan(source: Path, config: OriginConfig) -> tuple[SourceMedia, LadderPlan]:
    media = asyncio.run(probe_file(source, source.stat().st_size, probe_limits(config)))
    return media, plan_ladder(media.width, media.height, media.frame_rate)


def main() -> int:
    rounds = int(os.environ.get("BENCH_VIDEO_ROUNDS", "1"))
    results = run(max(1, rounds))
    RESULTS_JSON.parent.mkdir(parents=True, exist_ok=True)
    RESULTS_JSON.write_text(json.dumps(results, indent=2) + "\n")
    write_section(results)
    print("\n" + console_table(results))
    print(f"\nwrote {RESULTS_JSON.relative_to(REPO_ROOT)} and its section of docs/benchmarks.md")
    return 0


if __name__ == "__main__":
    sys.exit(main())
