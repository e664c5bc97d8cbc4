"""`python -m loadtest.bench counters`: every counting design, side by side, in one run.

Order: the do-nothing gRPC ceiling, per-event Redis, the pipeline, naive Cassandra counters
(the pipeline before naive Cassandra, so the pipeline meets a Cassandra without the naive
run's compaction debt). Writes `results/bench-counters.json`, `docs/bench-counters.png`
and the counting section of `docs/benchmarks.md`. Exits 1 when the pipeline's counts were
not exact (a correctness failure); missed performance targets are reported, not fatal.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
import time
from datetime import UTC, datetime

import uvloop

from loadtest.bench import bench_cassandra
from loadtest.bench.bench_stack import BenchStack
from loadtest.bench.grpc_ceiling import run_ceiling
from loadtest.bench.machine import describe_machine
from loadtest.bench.naive_cassandra import run_naive_cassandra
from loadtest.bench.pipeline import run_pipeline
from loadtest.bench.process_monitor import ProcessMonitor
from loadtest.bench.redis_hincrby import INSTANCE as REDIS_INSTANCE
from loadtest.bench.redis_hincrby import run_redis_hincrby
from loadtest.bench.report import BenchResults, console_table, write_json
from loadtest.bench.report_markdown import write_markdown
from loadtest.bench.settings import REPO_ROOT, BenchSettings, load_settings
from loadtest.bench.workload import build_pools
from reelstream.infra import redis_server

RESULTS_JSON = REPO_ROOT / "results" / "bench-counters.json"
DOCS_MD = REPO_ROOT / "docs" / "benchmarks.md"
PLOT_PNG = REPO_ROOT / "docs" / "bench-counters.png"


def _command() -> str:
    overrides = " ".join(
        f"{k}={v}" for k, v in sorted(os.environ.items()) if k.startswith("BENCH_")
    )
    tool = (
        "make bench-counters" if "MAKELEVEL" in os.environ else "python -m loadtest.bench counters"
    )
    return f"{overrides} {tool}".strip()


def _step(
    number: int, title: str, monitor: ProcessMonitor, settings: BenchSettings, phase: str
) -> None:
    print(f"\n[{number}/4] {title}  ({time.strftime('%H:%M:%S')})", flush=True)
    if phase:
        monitor.wait_quiet(phase, settings.quiet_wait_s, settings.quiet_cores)


def run_counters(settings: BenchSettings) -> BenchResults:
    started = time.monotonic()
    started_at = datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC")
    machine = describe_machine()
    print(
        f"bench-counters: {settings.seconds:.0f} s per phase on {machine['nproc']} cores "
        f"(load average {machine['load_average_at_start']})",
        flush=True,
    )
    print(
        f"generating {settings.pool_batches:,} x {settings.batch_events:,}-event batches "
        f"per workload ...",
        flush=True,
    )
    spread, hot = build_pools(settings)
    monitor = ProcessMonitor()
    monitor.start()
    monitor.track("bench-client", os.getpid())
    stack = BenchStack(settings.edges, settings.shards)
    try:
        with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
            _step(1, "do-nothing gRPC ceiling", monitor, settings, "grpc-ceiling")
            ceiling = run_ceiling(settings, spread, monitor, runner)
            _step(2, "Redis HINCRBY per event", monitor, settings, "redis-trials")
            redis, redis_trials = run_redis_hincrby(settings, spread, monitor)
            _step(3, "pipeline: client -> edge -> shard -> Cassandra", monitor, settings, "")
            bench_cassandra.up()
            cassandra = bench_cassandra.pid()
            if cassandra is not None:
                monitor.track("cassandra", cassandra)
            pipeline = run_pipeline(settings, stack, monitor, runner, spread, hot)
            _step(4, "naive Cassandra counters", monitor, settings, "naive-trials")
            naive, naive_trials = run_naive_cassandra(settings, spread, monitor)
    finally:
        monitor.stop()
        stack.down_pipeline()
        bench_cassandra.down()
    results = BenchResults(
        settings=settings,
        machine=machine,
        started_at=started_at,
        command=_command(),
        ceiling=ceiling,
        redis=redis,
        naive=naive,
        pipeline=pipeline,
        trials={"naive Cassandra": naive_trials, "Redis HINCRBY": redis_trials},
        quiet_waits=dict(monitor.quiet_waits),
        total_run_s=time.monotonic() - started,
    )
    write_json(results, RESULTS_JSON)
    # Imported here: matplotlib is slow to import, and spawned workers re-import this module.
    from loadtest.bench.report_plot import write_plot

    write_plot(results, monitor, PLOT_PNG)
    write_markdown(results, DOCS_MD, PLOT_PNG.name)
    return results


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m loadtest.bench", description=__doc__)
    parser.add_argument(
        "benchmark",
        choices=["counters", "stop"],
        help="the benchmark to run, or `stop`: stop whatever an interrupted run left behind",
    )
    args = parser.parse_args(argv)
    if args.benchmark == "stop":
        settings = load_settings()
        BenchStack(settings.edges, settings.shards).down_pipeline()
        redis_server.wipe(REDIS_INSTANCE)
        bench_cassandra.down()
        return 0
    try:
        settings = load_settings()
    except ValueError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    results = run_counters(settings)
    print("\n" + console_table(results))
    print(
        f"\nwrote {RESULTS_JSON.relative_to(REPO_ROOT)}, {DOCS_MD.relative_to(REPO_ROOT)}, "
        f"{PLOT_PNG.relative_to(REPO_ROOT)} in {results.total_run_s / 60:.1f} min"
    )
    return 0 if results.pipeline.exactness.get("exact") else 1


if __name__ == "__main__":
    sys.exit(main())
