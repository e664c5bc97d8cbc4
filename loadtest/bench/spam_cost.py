"""`make bench-spam-cost`: what spam filtering costs the counting pipeline's end-to-end rate.

Issue 5's target: the edge's inline screen (edge/spam_screen.py) and its forwarding of
accepted events to the spam service (edge/spam_forwarder.py -> `python -m spam`) cost the
counting pipeline at most 20 % of its end-to-end rate. Two configurations of the
benchmark's stack (bench_stack.py: its own Cassandra on 127.0.0.9, two counter processes,
two edges with their Redis instances):

- off: no screen, no spam address (the pipeline of `make bench-counters`);
- on: screen on with the edge's default limits, accepted events forwarded to a spam service
  process of the stack, which buffers and judges them with the shipped model and its
  default settings (no origin: reel durations unknown).

Every phase is a fresh stack (keyspace, journals, processes), warmed up, drained, then
driven closed loop for BENCH_SPAM_COST_SECONDS (default 30); its rate is end to end as in
pipeline.py: events acknowledged minus the growth of the journals' backlog. Afterwards the
journals drain and the sampled reels' counts are checked. Rounds (BENCH_SPAM_COST_ROUNDS,
default 3) run off/on, then on/off, ... so that drift of a shared machine falls on both.
The added cost is 1 - median(on) / median(off).

Workload: the counting benchmark's generator (workload.py) with 1,000,000 users instead of
100,000 (BENCH_SPAM_COST_USERS) and a pool of 5,000 batches, each event with the IP hash
of a household of 8 users (BENCH_SPAM_COST_USERS_PER_IP). At ~100k events/s, 100,000
users would each send a 3-15 s view every second, which no viewer can; 1,000,000 send one
every ~10 s, like someone swiping through reels; the pool (5,000,000 events, its own
draws for the warm-up) lasts a 30 s phase without repeating an event up to ~166k
acknowledged events/s. The screen's checks run on every event (their cost is what is measured), but
an organic user never empties a bucket: `pacing` in the results gives the busiest user's
events per phase against what the per-user bucket allows.

Writes results/bench-spam-cost.json and the `spam-cost` section of docs/benchmarks.md.
"""

from __future__ import annotations

import asyncio
import dataclasses
import json
import os
import sys
import time
from collections.abc import Mapping
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from typing import Any

import numpy as np
import uvloop

from edge.config import EdgeConfig
from loadtest.bench import bench_cassandra
from loadtest.bench.bench_stack import BenchStack
from loadtest.bench.doc_sections import replace_section
from loadtest.bench.exactness import check_counts, journal_depth, read_counts, wait_drained
from loadtest.bench.grpc_driver import DriveResult, EdgeTargets, drive_closed_loop
from loadtest.bench.machine import describe_machine
from loadtest.bench.process_monitor import ProcessMonitor
from loadtest.bench.service_metrics import scrape
from loadtest.bench.settings import REPO_ROOT, BenchSettings, load_settings
from loadtest.bench.spam_cost_report import (
    CONFIGS,
    METRICS,
    Phase,
    console_table,
    markdown,
    summarize,
    tier_cores,
    unexplained,
)
from loadtest.bench.workload import BatchPool, IntArray, build_pool, sample_reel_ids
from protos import common_pb2

RESULTS_JSON = REPO_ROOT / "results" / "bench-spam-cost.json"
SECTION = "spam-cost"
DRAIN_TIMEOUT_S = 600.0
DRAIN_STALL_S = 60.0
WARM_POOL_BATCHES = 1_000
ENV_PREFIX = "BENCH_SPAM_COST_"
MODULE = "loadtest.bench.spam_cost"


@dataclass(frozen=True)
class SpamCostSettings:
    seconds: float = 30.0
    """BENCH_SPAM_COST_SECONDS: length of every measured phase."""
    rounds: int = 3
    """BENCH_SPAM_COST_ROUNDS: phases per configuration."""
    users: int = 1_000_000
    """BENCH_SPAM_COST_USERS: user ids 1..users, drawn uniformly."""
    pool_batches: int = 5_000
    """BENCH_SPAM_COST_POOL_BATCHES: batches of 1,000 events in the measured pool."""
    users_per_ip: int = 8
    """BENCH_SPAM_COST_USERS_PER_IP: users sharing one IP hash (a household)."""

    def __post_init__(self) -> None:
        if self.seconds <= 0 or self.rounds < 1 or self.users < 1 or self.users_per_ip < 1:
            raise ValueError("BENCH_SPAM_COST_SECONDS > 0 and ROUNDS, USERS, USERS_PER_IP >= 1")
        if self.pool_batches < 1:
            raise ValueError("BENCH_SPAM_COST_POOL_BATCHES must be >= 1")

    @classmethod
    def from_env(cls, environ: Mapping[str, str] = os.environ) -> SpamCostSettings:
        values: dict[str, Any] = {}
        for item in dataclasses.fields(cls):
            raw = environ.get(ENV_PREFIX + item.name.upper(), "")
            if raw:
                values[item.name] = type(getattr(cls(), item.name))(raw)
        return cls(**values)


def ip_hashes_of(user_ids: IntArray, users_per_ip: int) -> IntArray:
    """A stable, never-zero IP hash per household of `users_per_ip` consecutive users (0
    means "unknown" to the screen, which does not limit it)."""
    household = (user_ids - 1) // users_per_ip
    mixed = (household.astype(np.uint64) * np.uint64(0x9E3779B97F4A7C15)) >> np.uint64(1)
    return (mixed | np.uint64(1)).astype(np.int64)


def with_ip_hashes(pool: BatchPool, users_per_ip: int) -> tuple[BatchPool, IntArray]:
    """The pool with an IP hash on every event (what it must count is unchanged), and the
    number of events of each user id in it (index = user id)."""
    payloads = []
    users: list[IntArray] = []
    for payload in pool.payloads:
        batch = common_pb2.EventBatch.FromString(payload)
        ids = np.asarray(batch.user_ids, dtype=np.int64)
        batch.ip_hashes.extend(ip_hashes_of(ids, users_per_ip).astype(np.uint64).tolist())
        payloads.append(batch.SerializeToString())
        users.append(ids)
    return dataclasses.replace(pool, payloads=payloads), np.bincount(np.concatenate(users))


def user_pacing(
    events_per_user: IntArray, events_per_s: float, phase_s: float, limits: EdgeConfig
) -> dict[str, float]:
    """How hard the busiest user of the pool presses the per-user token bucket when the
    pool is sent at `events_per_s` for `phase_s`: its events in the phase against what the
    bucket lets through in that time (burst + rate x time; one edge taking them all)."""
    pool_events = int(events_per_user.sum())
    cycles = np.ceil(events_per_s * phase_s / pool_events) if pool_events else 0.0
    active = events_per_user[events_per_user > 0]
    busiest = int(active.max()) if len(active) else 0
    mean_rate = float(active.mean()) * events_per_s / pool_events if len(active) else 0.0
    return {
        "users_in_pool": len(active),
        "events_per_s": events_per_s,
        "phase_s": phase_s,
        "mean_user_events_per_s": mean_rate,
        "mean_user_seconds_between_events": 1 / mean_rate if mean_rate else float("inf"),
        "busiest_user_events_per_s": busiest * events_per_s / pool_events if pool_events else 0.0,
        "busiest_user_events_in_phase": float(busiest * cycles),
        "bucket_allows_in_phase": limits.spam_user_burst + limits.spam_user_events_per_s * phase_s,
    }


def round_order(rounds: int) -> list[tuple[int, str]]:
    """(round, config) in run order: off/on, on/off, off/on, ..."""
    order: list[tuple[int, str]] = []
    for number in range(1, rounds + 1):
        configs = CONFIGS if number % 2 else CONFIGS[::-1]
        order.extend((number, config) for config in configs)
    return order


async def _depth(stack: BenchStack) -> int:
    return sum([await asyncio.to_thread(journal_depth, p) for p in stack.edge_metrics_ports])


async def measure(
    stack: BenchStack,
    pools: tuple[BatchPool, BatchPool],
    bench: BenchSettings,
    monitor: ProcessMonitor,
    label: str,
) -> tuple[DriveResult, int, dict[str, float], dict[str, Any], float]:
    """Warm-up, drain, one measured closed-loop window, drain, count check."""
    warm_pool, pool = pools
    targets = EdgeTargets(stack.edge_addresses)
    ports = stack.edge_metrics_ports
    try:
        await targets.wait_ready()
        warm = await drive_closed_loop(targets, warm_pool, bench.warmup_s, bench.inflight, "warm")
        await wait_drained(ports, DRAIN_TIMEOUT_S, DRAIN_STALL_S)
        depth_before = await _depth(stack)
        before = await asyncio.to_thread(scrape, stack.metrics_ports)
        with monitor.phase(label):
            result = await drive_closed_loop(targets, pool, bench.seconds, bench.inflight, label)
        backlog = await _depth(stack) - depth_before
        after = await asyncio.to_thread(scrape, stack.metrics_ports)
        started = time.monotonic()
        exactness: dict[str, Any]
        try:
            await wait_drained(ports, DRAIN_TIMEOUT_S, DRAIN_STALL_S)
        except TimeoutError as exc:
            exactness = {
                "exact": False,
                "exact_after_spam_removals": False,
                "drain_error": str(exc),
            }
        else:
            report = await check_counts([(warm_pool, warm), (pool, result)], targets.addresses)
            exactness = report.as_dict()
            # Views and likes the spam filter removed leave the counts: they explain a
            # mismatch of their reel, nothing else does.
            counts = await read_counts(targets.addresses[0], [int(r) for r in pool.sample_reels])
            views = {c.reel_id: c.views_removed for c in counts}
            likes = {c.reel_id: c.likes_removed for c in counts}
            exactness["views_removed_by_spam_filter"] = sum(views.values())
            exactness["likes_removed_by_spam_filter"] = sum(likes.values())
            exactness["exact_after_spam_removals"] = not (
                unexplained(report.view_mismatches, views)
                or unexplained(report.like_mismatches, likes)
                or report.edges_disagree
                or report.accepted_mismatches
            )
        drain_s = time.monotonic() - started
    finally:
        await targets.close()
    deltas = {m: after[m] - before.get(m, 0.0) for m in METRICS if m in after}
    return result, backlog, deltas, exactness, drain_s


def run_phase(
    config: str,
    number: int,
    pools: tuple[BatchPool, BatchPool],
    bench: BenchSettings,
    monitor: ProcessMonitor,
    runner: asyncio.Runner,
) -> Phase:
    label = f"{config}-{number}"
    stack = BenchStack(bench.edges, bench.shards, spam_filter=config == "on")
    try:
        stack.up()
        for name, pid in stack.pids().items():
            monitor.track(name, pid)
        monitor.wait_quiet(label, bench.quiet_wait_s, bench.quiet_cores)
        print(f"  {label}: {bench.seconds:.0f} s closed loop ...", flush=True)
        result, backlog, deltas, exactness, drain_s = runner.run(
            measure(stack, pools, bench, monitor, label)
        )
    finally:
        for prefix in ("edge-", "counter-", "redis-", "spam"):
            monitor.untrack(prefix)
        stack.down_pipeline()
    phase = Phase(
        config=config,
        round=number,
        events_per_s=(result.events - max(0, backlog)) / result.elapsed_s,
        acked_events_per_s=result.events_per_s,
        backlog_change=backlog,
        ack_p99_ms=result.latency_ms(0.99),
        drain_s=drain_s,
        cpu_cores=monitor.cpu_summary(label),
        metrics=deltas,
        exactness=exactness,
        errors=dict(result.errors),
    )
    print(
        f"  {label}: {phase.events_per_s:,.0f} ev/s end to end (acked"
        f" {phase.acked_events_per_s:,.0f}); drained in {drain_s:.0f} s; counts exact:"
        f" {exactness.get('exact')} (after the spam filter's removals:"
        f" {exactness.get('exact_after_spam_removals')}); cores "
        + " ".join(f"{k} {v:.2f}" for k, v in tier_cores(phase.cpu_cores).items()),
        flush=True,
    )
    return phase


def build_pools(
    settings: SpamCostSettings, bench: BenchSettings
) -> tuple[BatchPool, BatchPool, IntArray]:
    """The warm-up pool, the measured pool (its own draws, so the measured window repeats
    no warm-up event), both with IP hashes, and the measured pool's events per user."""
    sample = sample_reel_ids(bench, np.random.default_rng(bench.seed))
    warm_settings = dataclasses.replace(bench, pool_batches=WARM_POOL_BATCHES)
    warm = build_pool(warm_settings, "warm", 0.0, sample, bench.seed + 2)
    pool = build_pool(bench, "zipf", 0.0, sample, bench.seed + 1)
    warm, _ = with_ip_hashes(warm, settings.users_per_ip)
    pool, events_per_user = with_ip_hashes(pool, settings.users_per_ip)
    return warm, pool, events_per_user


def command() -> str:
    """How this run was started, with its BENCH_SPAM_COST_* settings."""
    words = [f"{k}={v}" for k, v in sorted(os.environ.items()) if k.startswith(ENV_PREFIX)]
    words.append("make bench-spam-cost" if "MAKELEVEL" in os.environ else f"python -m {MODULE}")
    return " ".join(words)


def run(settings: SpamCostSettings) -> dict[str, Any]:
    started, started_at = time.monotonic(), datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC")
    bench = dataclasses.replace(
        load_settings(),
        seconds=settings.seconds,
        users=settings.users,
        pool_batches=settings.pool_batches,
    )
    machine = describe_machine()
    print(
        f"bench-spam-cost: {settings.rounds} rounds x off/on x {settings.seconds:.0f} s on"
        f" {machine['nproc']} cores (load average {machine['load_average_at_start']});"
        f" generating {settings.pool_batches:,} batches ...",
        flush=True,
    )
    warm, pool, events_per_user = build_pools(settings, bench)
    monitor = ProcessMonitor()
    monitor.start()
    monitor.track("bench-client", os.getpid())
    phases: list[Phase] = []
    try:
        bench_cassandra.up()
        cassandra = bench_cassandra.pid()
        if cassandra is not None:
            monitor.track("cassandra", cassandra)
        with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
            for number, config in round_order(settings.rounds):
                step = f"[{len(phases) + 1}/{2 * settings.rounds}] {config}, round {number}"
                print(f"\n{step}  ({time.strftime('%H:%M:%S')})", flush=True)
                phases.append(run_phase(config, number, (warm, pool), bench, monitor, runner))
    finally:
        monitor.stop()
        bench_cassandra.down()
    busiest_rate = max(p.acked_events_per_s for p in phases)
    return {
        "command": command(),
        "started_at": started_at,
        "total_run_s": time.monotonic() - started,
        "settings": asdict(settings),
        "bench_settings": asdict(bench),
        "machine": machine,
        "pacing": user_pacing(
            events_per_user, busiest_rate, bench.seconds + bench.warmup_s, EdgeConfig()
        ),
        "summary": summarize(phases),
        "phases": [asdict(p) for p in phases],
        "quiet_waits_s": dict(monitor.quiet_waits),
    }


def main() -> int:
    try:
        settings = SpamCostSettings.from_env()
    except ValueError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    result = run(settings)
    RESULTS_JSON.parent.mkdir(parents=True, exist_ok=True)
    RESULTS_JSON.write_text(json.dumps(result, indent=2) + "\n")
    replace_section(SECTION, markdown(result))
    print("\n" + console_table(result["summary"]))
    print(
        f"\nwrote {RESULTS_JSON.relative_to(REPO_ROOT)} and the {SECTION} section of"
        f" docs/benchmarks.md in {result['total_run_s'] / 60:.1f} min",
        flush=True,
    )
    exact = all(c["all_exact"] for c in result["summary"]["configs"].values())
    return 0 if exact else 1


if __name__ == "__main__":
    sys.exit(main())
