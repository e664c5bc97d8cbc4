"""Report of the transcode benchmark (`loadtest/bench/video_transcode.py`): the console
table and the generated `bench-video-transcode` section of docs/benchmarks.md."""

from __future__ import annotations

import os
from collections.abc import Mapping

from loadtest.bench.doc_sections import replace_section

SECTION = "bench-video-transcode"
# (label, key, unit, target): the figures of issue 4, in the order a reader checks them.
ROWS = (
    ("single ffmpeg process, whole ladder", "ladder_single_process_s", "s", ""),
    ("one ffmpeg process per rung, in sequence", "ladder_per_rung_s", "s", ""),
    ("speed-up of the single process", "single_vs_per_rung_speedup", "x", ">= 1.2x"),
    ("  the same in CPU seconds", "single_vs_per_rung_cpu_ratio", "x", ""),
    ("bare ffmpeg, the origin's command line", "ladder_bare_ffmpeg_s", "s", ""),
    ("origin: probe + ladder + master + poster", "ladder_origin_s", "s", ""),
    ("origin / bare ffmpeg", "origin_overhead_ratio", "x", "<= 1.05x"),
    ("  the same in CPU seconds", "origin_overhead_cpu_ratio", "x", ""),
    ("realtime factor (video s per wall s)", "realtime_factor", "x", ""),
    ("time to the first playable rung", "first_rung_s", "s", ""),
)


def _verdict(value: float, target: str) -> str:
    if not target:
        return ""
    bound = float(target.split()[1].rstrip("x"))
    met = value >= bound if target.startswith(">=") else value <= bound
    return f"target {target}: {'met' if met else '**not met**'}"


def console_table(results: Mapping[str, object]) -> str:
    lines = [f"{'measure':<52} {'value':>9}", "-" * 62]
    for label, key, unit, target in ROWS:
        suffix = f"  (target {target})" if target else ""
        lines.append(f"{label:<52} {results[key]!s:>8}{unit}{suffix}")
    cpu = results["cpu_s"]
    assert isinstance(cpu, dict)
    lines.append("CPU seconds: " + ", ".join(f"{k} {v}" for k, v in cpu.items()))
    return "\n".join(lines)


def _command() -> str:
    overrides = " ".join(
        f"{k}={v}" for k, v in sorted(os.environ.items()) if k == "BENCH_VIDEO_ROUNDS"
    )
    tool = (
        "make bench-video-transcode"
        if "MAKELEVEL" in os.environ
        else "python -m loadtest.bench.video_transcode"
    )
    return f"{overrides} {tool}".strip()


def markdown(results: Mapping[str, object]) -> str:
    rows = []
    for label, key, unit, target in ROWS:
        value = results[key]
        assert isinstance(value, int | float)
        rows.append(f"| {label.strip()} | {value:g} {unit} | {_verdict(float(value), target)} |")
    cpu = results["cpu_s"]
    assert isinstance(cpu, dict)
    cpu_text = ", ".join(f"{name} {seconds:g} s" for name, seconds in cpu.items())
    rungs = results["rungs"]
    assert isinstance(rungs, list)
    table = "\n".join(rows)
    machine = results["machine"]
    assert isinstance(machine, dict)
    return f"""### Transcoding at the origin (`make bench-video-transcode`)

Command: `{_command()}`.
Clip: {results["clip"]}; ladder {", ".join(rungs)}, libx264 `{results["preset"]}`,
{results["ffmpeg_threads"]} threads per encoder.
Fastest wall time of {results["rounds"]} round(s), order rotated between rounds.
Machine: {machine.get("nproc")} cores ({machine.get("cpu_model")}), load average at the end
{results["load_average_at_end"]}: the machine is shared, so CPU seconds are the steadier
figure.

| measure | value | verdict |
|---|---|---|
{table}

CPU seconds of the child processes: {cpu_text}.
"""


def write_section(results: Mapping[str, object]) -> None:
    replace_section(SECTION, markdown(results))
