"""Scenario 1: the real pipeline, client -> edge -> counter shard -> Cassandra, journal on.

Phases, each `settings.seconds` long, after an unmeasured warm-up (`pipeline_warmup_s`), each
starting from drained journals (the previous phase's backlog would otherwise slow it down):
1. peak: `inflight` calls per edge back to back (closed loop), spread Zipf workload;
2. half rate: open loop at half the peak's end-to-end rate, for the acknowledgment p99;
3. hot key: closed loop, 50% of events on one reel.
A freshness probe runs through every phase. The headline rate is end to end: events
acknowledged to the client minus the growth of the edges' unacknowledged backlog over the
phase, so a journal that fills faster than the shards drain it does not count as throughput.
At the end the journals must drain and the sampled counts must be exactly what was sent.
"""

from __future__ import annotations

import asyncio
import os
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from math import nan
from typing import Any

from loadtest.bench.bench_stack import BENCH_KEYSPACE, BenchStack
from loadtest.bench.cassandra_metrics import CassandraAdmin, WriteCounts
from loadtest.bench.exactness import check_counts, journal_depth, wait_drained
from loadtest.bench.figures import PhaseFigures
from loadtest.bench.freshness import FreshnessProbe, FreshnessResult
from loadtest.bench.grpc_driver import DriveResult, EdgeTargets, drive_closed_loop, drive_rate
from loadtest.bench.process_monitor import ProcessMonitor
from loadtest.bench.service_metrics import scrape, summarize
from loadtest.bench.settings import BenchSettings
from loadtest.bench.workload import BatchPool

DESIGN = "pipeline"
DRAIN_TIMEOUT_S = 180.0
PHASES = ("pipeline-peak", "pipeline-half-rate", "pipeline-hot-key")
WHOLE_RUN = "pipeline-run"
"""Warm-up, phases, drains and the final check: the window RSS is judged over."""


@dataclass
class PipelineOutcome:
    phases: dict[str, PhaseFigures] = field(default_factory=dict)
    exactness: dict[str, Any] = field(default_factory=dict)
    rss: dict[str, dict[str, float]] = field(default_factory=dict)
    drain_s: float = float("nan")
    """Seconds the journals took to drain after the last phase."""
    settle_s: dict[str, float] = field(default_factory=dict)
    """Seconds waited for the previous backlog to drain before each phase."""
    peak_acked_events_per_s: float = float("nan")


class PipelineBench:
    """Drives a running `BenchStack` through the phases above."""

    def __init__(
        self,
        settings: BenchSettings,
        stack: BenchStack,
        monitor: ProcessMonitor,
        admin: CassandraAdmin,
    ) -> None:
        self._settings = settings
        self._stack = stack
        self._monitor = monitor
        self._admin = admin
        self.runs: list[tuple[BatchPool, DriveResult]] = []

    async def _depth(self) -> int:
        ports = self._stack.edge_metrics_ports
        return sum([await asyncio.to_thread(journal_depth, port) for port in ports])

    async def _writes(self) -> WriteCounts | None:
        """Cassandra's write counters, or None when the read failed (the figure is skipped)."""
        try:
            return await asyncio.to_thread(self._admin.write_counts, BENCH_KEYSPACE)
        except Exception as exc:  # a metrics read must never fail the run
            print(f"  (could not read Cassandra's write counters: {exc})", flush=True)
            return None

    async def _measure(
        self,
        label: str,
        scenario: str,
        pool: BatchPool,
        drive: Callable[[], Awaitable[DriveResult]],
        probe: FreshnessProbe,
    ) -> PhaseFigures:
        settings = self._settings
        await asyncio.to_thread(
            self._monitor.wait_quiet, label, settings.quiet_wait_s, settings.quiet_cores
        )
        depth_before, writes_before = await self._depth(), await self._writes()
        metrics_before = await asyncio.to_thread(scrape, self._stack.metrics_ports)
        print(f"  {label}: {self._settings.seconds:.0f} s ...", flush=True)
        probing = asyncio.create_task(probe.run(self._settings.seconds))
        with self._monitor.phase(label):
            result = await drive()
        depth_after, writes_after = await self._depth(), await self._writes()
        metrics_after = await asyncio.to_thread(scrape, self._stack.metrics_ports)
        # The last probes may still be on their way: the probe waits for them (bounded).
        fresh: FreshnessResult = await probing
        self.runs.append((pool, result))
        writes = (
            writes_after - writes_before
            if writes_after is not None and writes_before is not None
            else WriteCounts(-1, -1)
        )
        backlog = depth_after - depth_before
        end_to_end = (result.events - max(0, backlog)) / result.elapsed_s
        figures = PhaseFigures(
            design=DESIGN,
            scenario=scenario,
            events_per_s=end_to_end,
            duration_s=result.elapsed_s,
            events=result.events,
            ack_p50_ms=result.latency_ms(0.5),
            ack_p99_ms=result.latency_ms(0.99),
            freshness_p50_ms=fresh.quantile_ms(0.5),
            freshness_p99_ms=fresh.quantile_ms(0.99),
            freshness_probes=len(fresh.lags_ms),
            freshness_timeouts=fresh.timeouts,
            cassandra_writes_per_s=writes.local / result.elapsed_s if writes.local >= 0 else nan,
            cassandra_coordinator_writes_per_s=(
                writes.coordinator / result.elapsed_s if writes.coordinator >= 0 else nan
            ),
            cpu_cores=self._monitor.cpu_summary(label),
            errors=dict(result.errors),
            service_metrics=summarize(metrics_before, metrics_after),
            notes=(
                f"acknowledged {result.events_per_s:,.0f} ev/s; backlog change {backlog:+,} "
                f"events; {result.calls:,} calls; {result.skipped} rate slots skipped"
            ),
        )
        print(
            f"  {label}: {figures.events_per_s:,.0f} ev/s end to end "
            f"(acked {result.events_per_s:,.0f}), ack p50/p99 {figures.ack_p50_ms:.1f}/"
            f"{figures.ack_p99_ms:.1f} ms, freshness p50/p99 {figures.freshness_p50_ms:.0f}/"
            f"{figures.freshness_p99_ms:.0f} ms, cassandra {figures.cassandra_writes_per_s:,.0f}"
            f" writes/s",
            flush=True,
        )
        return figures

    async def _settle(self, outcome: PipelineOutcome, before: str) -> None:
        """Lets the previous phase's backlog drain, so each phase starts from empty journals."""
        started = time.monotonic()
        try:
            await wait_drained(self._stack.edge_metrics_ports, DRAIN_TIMEOUT_S)
        except TimeoutError as exc:
            outcome.exactness.setdefault("settle_errors", []).append(str(exc))
        outcome.settle_s[before] = time.monotonic() - started
        print(f"  backlog drained in {outcome.settle_s[before]:.1f} s", flush=True)

    async def _phases(
        self, targets: EdgeTargets, probe: FreshnessProbe, spread: BatchPool, hot: BatchPool
    ) -> PipelineOutcome:
        settings = self._settings
        outcome = PipelineOutcome()
        inflight = settings.inflight
        print(f"  warm-up {settings.pipeline_warmup:.0f} s", flush=True)
        warm = await drive_closed_loop(targets, spread, settings.pipeline_warmup, inflight, "warm")
        self.runs.append((spread, warm))
        await self._settle(outcome, "peak")
        peak = await self._measure(
            PHASES[0],
            "zipf, closed loop",
            spread,
            lambda: drive_closed_loop(targets, spread, settings.seconds, inflight, "peak"),
            probe,
        )
        outcome.phases["peak"] = peak
        outcome.peak_acked_events_per_s = self.runs[-1][1].events_per_s
        await self._settle(outcome, "half_rate")
        half_rate = peak.events_per_s / 2
        max_pending = inflight * len(targets.addresses) * 4
        outcome.phases["half_rate"] = await self._measure(
            PHASES[1],
            f"zipf, open loop at {half_rate:,.0f} ev/s",
            spread,
            lambda: drive_rate(targets, spread, settings.seconds, half_rate, max_pending, "half"),
            probe,
        )
        await self._settle(outcome, "hot_key")
        outcome.phases["hot_key"] = await self._measure(
            PHASES[2],
            f"{settings.hot_fraction:.0%} on one reel, closed loop",
            hot,
            lambda: drive_closed_loop(targets, hot, settings.seconds, inflight, "hot"),
            probe,
        )
        return outcome

    async def run(self, spread: BatchPool, hot: BatchPool) -> PipelineOutcome:
        addresses = self._stack.edge_addresses
        targets = EdgeTargets(addresses)
        probe = FreshnessProbe(addresses[0], addresses[1])
        try:
            await targets.wait_ready()
            outcome = await self._phases(targets, probe, spread, hot)
            print("  waiting for the journals to drain ...", flush=True)
            started = time.monotonic()
            try:
                outcome.drain_s = await wait_drained(
                    self._stack.edge_metrics_ports, DRAIN_TIMEOUT_S
                )
            except TimeoutError as exc:
                outcome.exactness["drain_error"] = str(exc)
                outcome.drain_s = time.monotonic() - started
            report = await check_counts(self.runs, addresses)
            outcome.exactness.update(report.as_dict())
            print(
                f"  drained in {outcome.drain_s:.1f} s; exact counts: {report.exact} "
                f"({report.reels_checked} reels, {len(report.view_mismatches)} view and "
                f"{len(report.like_mismatches)} like mismatches)",
                flush=True,
            )
        finally:
            await probe.close()
            await targets.close()
        return outcome


def run_pipeline(
    settings: BenchSettings,
    stack: BenchStack,
    monitor: ProcessMonitor,
    runner: asyncio.Runner,
    spread: BatchPool,
    hot: BatchPool,
) -> PipelineOutcome:
    """Starts the stack, runs the phases, records RSS, stops the services again."""
    stack.up()
    admin = CassandraAdmin()
    try:
        for name, pid in stack.pids().items():
            monitor.track(name, pid)
        monitor.track("bench-client", os.getpid())
        bench = PipelineBench(settings, stack, monitor, admin)
        with monitor.phase(WHOLE_RUN):
            outcome = runner.run(bench.run(spread, hot))
        names = [s.name for s in stack.specs]
        outcome.rss = monitor.rss_summary([WHOLE_RUN], names)
    finally:
        admin.close()
        monitor.untrack("edge-")
        monitor.untrack("counter-")
        monitor.untrack("redis-")
        stack.down_pipeline()
    return outcome
