"""`make bench-scale`: how the counting pipeline scales out on this machine.

1. Throughput with 1, 2 and 4 edges (2 counter processes) and 1, 2 and 4 counter processes
   (2 edges), each a fresh pipeline (`bench_stack.bench_specs`: no origin, no spam screen)
   driven closed-loop for BENCH_SCALE_SECONDS; the rate is end to end (acknowledged events
   minus the growth of the journals' backlog). Per-process CPU (cores) comes with it: on a
   2-core machine more processes cannot add cores, so efficiency shows as events per
   core-second. BENCH_SCALE_GRID=full runs the whole 3x3 grid.
2. The same as 2 edges x 2 counters with 8 and with 2 logical shards instead of the
   default (DEFAULT_SHARD_COUNT, 4): what every logical shard's own group commit, batches
   and roll-ups cost.
3. Shard handoff: under a steady load, a third counter process joins, then leaves again
   (SIGTERM). Per moved shard, from its old owner starting the handoff to the new owner
   serving it (from the counters' `shard handed off` / `shard serving` log lines and their
   `took_s`).
4. Spike to scaled-out: the autoscaler (reelstream/autoscaler.py, HPA policy, edges 1..2,
   rounds every BENCH_SCALE_AUTOSCALE_INTERVAL_S) watches one edge; a closed-loop spike
   starts; the time until the second edge is SERVING.

Counters use the development Cassandra (127.0.0.1) with their own keyspace
`reelstream_bench_scale`, dropped before each pipeline; edges journal into the benchmark's
Redis instances (6480+N, wiped). Services of a running stack are stopped first (same ports).
Writes results/bench-scale.json and prints a table.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import re
import signal
import statistics
import time
from dataclasses import asdict, dataclass, field
from datetime import datetime
from pathlib import Path

import numpy as np

from loadtest.bench.bench_stack import EDGE_REDIS_BASE_PORT, bench_specs, edge_redis_name
from loadtest.bench.cassandra_metrics import CassandraAdmin
from loadtest.bench.doc_sections import replace_section
from loadtest.bench.exactness import journal_depth
from loadtest.bench.grpc_driver import EdgeTargets, drive_closed_loop, drive_rate
from loadtest.bench.machine import describe_machine
from loadtest.bench.process_monitor import ProcessMonitor
from loadtest.bench.settings import BenchSettings
from loadtest.bench.workload import BatchPool, build_pool, sample_reel_ids
from reelstream import stack
from reelstream.autoscaler import AutoscaleController, Replica, default_tiers
from reelstream.infra import cassandra_node, local_process, redis_server
from reelstream.ring import DEFAULT_SHARD_COUNT
from reelstream.stack import ServiceSpec

KEYSPACE = "reelstream_bench_scale"
CASSANDRA = "127.0.0.1"
START_TIMEOUT_S = 180.0
INFLIGHT = 8
RESULTS = Path("results/bench-scale.json")
LOG_LINE = re.compile(r'^ts=(\S+) .*msg="(shard serving|shard handed off)" .*shard=(\d+)')
TOOK = re.compile(r"took_s=([0-9.]+)")


@dataclass
class Throughput:
    edges: int
    counters: int
    logical_shards: int
    events_per_s: float
    acked_events_per_s: float
    ack_p99_ms: float
    cpu_cores: dict[str, float]
    events_per_core_s: float
    errors: dict[str, int] = field(default_factory=dict)


class Pipeline:
    """One fresh pipeline of `edges` edges and `counters` counter processes."""

    def __init__(self, edges: int, counters: int, shard_count: int) -> None:
        self.shard_count = shard_count
        self.specs = self.plan(edges, counters)
        self.edges = [s for s in self.specs if s.module == "edge"]
        self.counters = [s for s in self.specs if s.module == "counter"]

    def plan(self, edges: int, counters: int) -> list[ServiceSpec]:
        return bench_specs(
            edges,
            counters,
            keyspace=KEYSPACE,
            cassandra_hosts=CASSANDRA,
            shard_count=self.shard_count,
        )

    def up(self) -> None:
        running = stack.running_specs()
        if running:
            # Every service of a running stack, spam and moderation included (they hold
            # ports of the plan too), not only the pipeline's tiers.
            print(f"stopping running services: {', '.join(s.name for s in running)}", flush=True)
            stack.stop_services()
        # The development node, started as `make up` starts it (left alone if it runs):
        # `make bench-scale` on a machine where nothing runs used to fail to connect.
        cassandra_node.up(1, timeout_s=START_TIMEOUT_S)
        admin = CassandraAdmin(CASSANDRA)
        try:
            admin.drop_keyspace(KEYSPACE)
        finally:
            admin.close()
        for spec in self.counters:
            stack.start_service(spec)
        stack.wait_serving(self.counters, START_TIMEOUT_S)
        stack.wait_settled(START_TIMEOUT_S)
        for index in range(len(self.edges)):
            self.start_edge(index)
        stack.wait_serving(self.edges, START_TIMEOUT_S)

    def start_edge(self, index: int) -> ServiceSpec:
        spec = self.plan(index + 1, 1)[-1]
        redis_server.wipe(edge_redis_name(index))
        redis_server.up_journal(edge_redis_name(index), EDGE_REDIS_BASE_PORT + index)
        stack.start_service(spec)
        return spec

    def pids(self) -> dict[str, int]:
        found = {}
        for spec in stack.running_specs():
            pid = local_process.read_live_pid(spec.pid_file, spec.marker)
            if pid is not None:
                found[spec.name] = pid
        return found

    def down(self) -> None:
        stack.stop_services()
        for index in range(len(self.edges) + 4):
            redis_server.wipe(edge_redis_name(index))


async def measure(
    pipeline: Pipeline, pool: BatchPool, seconds: float, monitor: ProcessMonitor
) -> Throughput:
    addresses = [s.address for s in pipeline.edges]
    ports = [s.metrics_port for s in pipeline.edges]
    targets = EdgeTargets(addresses)
    try:
        await targets.wait_ready()
        await drive_closed_loop(targets, pool, min(5.0, seconds / 3), INFLIGHT, "warm")
        label = f"{len(pipeline.edges)}e-{len(pipeline.counters)}c-{pipeline.shard_count}s"
        before = sum(journal_depth(p) for p in ports)
        with monitor.phase(label):
            result = await drive_closed_loop(targets, pool, seconds, INFLIGHT, label)
        backlog = sum(journal_depth(p) for p in ports) - before
    finally:
        await targets.close()
    cpu = monitor.cpu_summary(label)
    served = sum(v for k, v in cpu.items() if k.startswith(("edge-", "counter-", "redis-")))
    rate = (result.events - max(0, backlog)) / result.elapsed_s
    return Throughput(
        len(pipeline.edges),
        len(pipeline.counters),
        pipeline.shard_count,
        round(rate),
        round(result.events_per_s),
        round(result.latency_ms(0.99), 1),
        {k: round(v, 2) for k, v in cpu.items()},
        round(rate / served) if served else 0,
        dict(result.errors),
    )


def _log_events(path: Path, since: float) -> list[tuple[float, str, int, float]]:
    """(unix time, message, shard, took_s) of the handoff lines of one counter log."""
    events = []
    for line in path.read_text(errors="replace").splitlines():
        match = LOG_LINE.match(line)
        if not match:
            continue
        at = datetime.fromisoformat(match.group(1).replace("Z", "+00:00")).timestamp()
        took = TOOK.search(line)
        if at >= since:
            events.append(
                (at, match.group(2), int(match.group(3)), float(took.group(1) if took else 0))
            )
    return events


def handoff_times(logs: list[Path], since: float) -> list[float]:
    """Per moved shard: seconds from its old owner starting the handoff to the new owner
    serving it."""
    starts: list[tuple[int, float]] = []
    serving: dict[int, list[float]] = {}
    for path in logs:
        for at, message, shard, took in _log_events(path, since):
            if message == "shard handed off":
                starts.append((shard, at - took))
            else:
                serving.setdefault(shard, []).append(at)
    times = []
    for shard, start in starts:
        later = [at for at in serving.get(shard, []) if at > start]
        if later:
            times.append(round(min(later) - start, 3))
    return times


def _summary(values: list[float]) -> dict[str, float]:
    if not values:
        return {}
    return {
        "moves": len(values),
        "median_s": round(statistics.median(values), 3),
        "max_s": round(max(values), 3),
    }


async def handoff(pipeline: Pipeline, pool: BatchPool, rate: float) -> dict[str, object]:
    """A third counter joins, then leaves, under a steady load of `rate` events/s."""
    targets = EdgeTargets([s.address for s in pipeline.edges])
    joiner = next(s for s in pipeline.plan(len(pipeline.edges), 3) if s.name == "counter-2")
    result: dict[str, object] = {"load_events_per_s": round(rate)}
    try:
        await targets.wait_ready()
        load = asyncio.create_task(drive_rate(targets, pool, 60.0, rate, 64, "handoff-load"))
        await asyncio.sleep(3)
        began, since = time.monotonic(), time.time()
        stack.start_service(joiner)
        await asyncio.to_thread(stack.wait_serving, [joiner], START_TIMEOUT_S)
        await asyncio.to_thread(stack.wait_settled, START_TIMEOUT_S)
        result["join_settled_s"] = round(time.monotonic() - began, 2)
        await asyncio.sleep(3)
        began, since_leave = time.monotonic(), time.time()
        pid = local_process.read_live_pid(joiner.pid_file, joiner.marker)
        if pid is not None:
            os.kill(pid, signal.SIGTERM)
        await asyncio.to_thread(stack.wait_settled, START_TIMEOUT_S)
        result["leave_settled_s"] = round(time.monotonic() - began, 2)
        logs = [s.log_file for s in pipeline.counters] + [joiner.log_file]
        left = handoff_times(logs, since_leave)
        joined = handoff_times(logs, since)[: -len(left) or None]
        result["join_per_shard"] = _summary(joined)
        result["leave_per_shard"] = _summary(left)
        drive = await load
        result["load_errors"] = dict(drive.errors)
    finally:
        await targets.close()
        joiner.pid_file.unlink(missing_ok=True)
    return result


class EdgeStarter:
    """The autoscaler's hands for the benchmark: starts benchmark edges, never stops one."""

    def __init__(self, pipeline: Pipeline) -> None:
        self._pipeline = pipeline
        self.scaled_out_at: float | None = None

    def scale(self, tier: str, current: int, desired: int) -> None:
        if tier != "edge" or desired <= current:
            return
        new = [self._pipeline.start_edge(index) for index in range(current, desired)]
        stack.wait_serving(new, START_TIMEOUT_S)
        self.scaled_out_at = time.monotonic()


class PipelineReplicas:
    def __init__(self, pipeline: Pipeline) -> None:
        self._pipeline = pipeline

    def replicas(self, tier: str) -> list[Replica]:
        return [
            Replica(s.name, f"http://127.0.0.1:{s.metrics_port}/metrics")
            for s in stack.running_specs()
            if s.module == tier and local_process.read_live_pid(s.pid_file, s.marker)
        ]


async def spike_to_scaled_out(
    pipeline: Pipeline, pool: BatchPool, interval_s: float, limit_s: float
) -> dict[str, object]:
    """Seconds from a closed-loop spike on one edge to a second edge SERVING, the
    autoscaler deciding every `interval_s`."""
    edge_tier, _ = default_tiers(max_edges=2, shards=len(pipeline.counters))
    starter = EdgeStarter(pipeline)
    controller = AutoscaleController((edge_tier,), PipelineReplicas(pipeline), starter)
    targets = EdgeTargets([pipeline.edges[0].address])
    stop = asyncio.Event()

    async def rounds() -> None:
        while not stop.is_set() and starter.scaled_out_at is None:
            await asyncio.to_thread(controller.run_round)
            await asyncio.sleep(interval_s)

    try:
        await targets.wait_ready()
        controlling = asyncio.create_task(rounds())
        await asyncio.sleep(interval_s * 2)  # the first scrapes give rates a baseline
        began = time.monotonic()
        spike = asyncio.create_task(drive_closed_loop(targets, pool, limit_s, INFLIGHT, "spike"))
        # The rounds end once the second edge serves; the spike has no more to show then.
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(asyncio.shield(controlling), limit_s)
        stop.set()
        spike.cancel()
        await asyncio.gather(spike, controlling, return_exceptions=True)
    finally:
        await targets.close()
    took = None if starter.scaled_out_at is None else starter.scaled_out_at - began
    return {
        "interval_s": interval_s,
        "spike_to_second_edge_serving_s": None if took is None else round(took, 1),
        "limit_s": limit_s,
    }


def grid(full: bool) -> list[tuple[int, int, int]]:
    """(edges, counter processes, logical shards) of the throughput runs."""
    if full:
        cells = [(e, c, DEFAULT_SHARD_COUNT) for e in (1, 2, 4) for c in (1, 2, 4)]
    else:
        cells = [(e, c, DEFAULT_SHARD_COUNT) for e, c in ((1, 2), (2, 2), (4, 2), (2, 1), (2, 4))]
    return [*cells, (2, 2, 8), (2, 2, 2)]


def print_table(rows: list[Throughput]) -> None:
    widths = (5, 8, 7, 10, 7, 10, 13, 7, 9)
    titles = ("edges", "counters", "logical", "events/s", "p99 ms", "edge cores",
              "counter cores", "machine", "ev/core-s")  # fmt: skip
    for row in [titles, *table_rows(rows)]:
        print(" ".join(f"{cell:>{width}}" for cell, width in zip(row, widths, strict=True)))


def table_rows(rows: list[Throughput]) -> list[tuple[str, ...]]:
    """The throughput table: one row per pipeline shape, CPU per tier in cores."""
    out: list[tuple[str, ...]] = []
    for r in rows:
        edge = sum(v for k, v in r.cpu_cores.items() if k.startswith("edge-"))
        counter = sum(v for k, v in r.cpu_cores.items() if k.startswith("counter-"))
        out.append(
            (
                str(r.edges),
                str(r.counters),
                str(r.logical_shards),
                f"{r.events_per_s:,.0f}",
                f"{r.ack_p99_ms:.1f}",
                f"{edge:.2f}",
                f"{counter:.2f}",
                f"{r.cpu_cores.get('machine', 0):.2f}",
                f"{r.events_per_core_s:,.0f}",
            )
        )
    return out


def markdown(rows: list[Throughput], extra: dict[str, object], seconds: float) -> str:
    """The bench-scale section of docs/benchmarks.md."""
    header = (
        "edges",
        "counters",
        "logical shards",
        "events/s",
        "ack p99 ms",
        "edge cores",
        "counter cores",
        "machine cores",
        "events per core-s",
    )
    lines = [
        "## Scale-out (`make bench-scale`)",
        "",
        f"Command: `make bench-scale` ({seconds:.0f} s per pipeline shape; figures of one run on"
        " a 2-core machine where the load generator shares the cores, so efficiency is read"
        " from events per core-second rather than from raw rates). Details and method:"
        " [operations.md](operations.md).",
        "",
        "| " + " | ".join(header) + " |",
        "|" + "---|" * len(header),
        *("| " + " | ".join(row) + " |" for row in table_rows(rows)),
        "",
        "```json",
        json.dumps(extra, indent=2),
        "```",
    ]
    return "\n".join(lines)


def main() -> int:
    seconds = float(os.environ.get("BENCH_SCALE_SECONDS", "15"))
    full = os.environ.get("BENCH_SCALE_GRID", "") == "full"
    interval_s = float(os.environ.get("BENCH_SCALE_AUTOSCALE_INTERVAL_S", "3"))
    settings = BenchSettings(seconds=seconds)
    sample = sample_reel_ids(settings, np.random.default_rng(settings.seed))
    pool = build_pool(settings, "zipf", 0.0, sample, settings.seed + 1)
    monitor = ProcessMonitor()
    monitor.start()
    rows: list[Throughput] = []
    extra: dict[str, object] = {}
    try:
        for edges, counters, shard_count in grid(full):
            print(f"pipeline: {edges} edges, {counters} counters, {shard_count} logical shards")
            pipeline = Pipeline(edges, counters, shard_count)
            try:
                pipeline.up()
                for name, pid in pipeline.pids().items():
                    monitor.track(name, pid)
                row = asyncio.run(measure(pipeline, pool, seconds, monitor))
                rows.append(row)
                print(f"  {row.events_per_s:,.0f} events/s end to end", flush=True)
            finally:
                pipeline.down()
                monitor.untrack("edge-")
                monitor.untrack("counter-")
        base = next(
            r
            for r in rows
            if (r.edges, r.counters, r.logical_shards) == (2, 2, DEFAULT_SHARD_COUNT)
        )
        print("handoff: counter-2 joins a 2-edge, 2-counter pipeline, then leaves")
        pipeline = Pipeline(2, 2, DEFAULT_SHARD_COUNT)
        try:
            pipeline.up()
            extra["handoff"] = asyncio.run(handoff(pipeline, pool, base.events_per_s * 0.3))
        finally:
            pipeline.down()
        print("autoscaler: spike on one edge until a second edge serves")
        pipeline = Pipeline(1, 2, DEFAULT_SHARD_COUNT)
        try:
            pipeline.up()
            extra["autoscale"] = asyncio.run(
                spike_to_scaled_out(pipeline, pool, interval_s, limit_s=120.0)
            )
        finally:
            pipeline.down()
    finally:
        monitor.stop()
    print_table(rows)
    print(json.dumps(extra, indent=2))
    RESULTS.parent.mkdir(exist_ok=True)
    RESULTS.write_text(
        json.dumps(
            {
                "machine": describe_machine(),
                "seconds_per_run": seconds,
                "throughput": [asdict(r) for r in rows],
                **extra,
            },
            indent=2,
        )
        + "\n"
    )
    replace_section("bench-scale", markdown(rows, extra, seconds))
    print(f"wrote {RESULTS} and its section of docs/benchmarks.md")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
