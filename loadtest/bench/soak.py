"""Soak: the counting pipeline held at half of its peak rate for an hour, watching for leaks.

`make soak` (SOAK_SECONDS=3600 by default; shorten with SOAK_SECONDS=300). The stack is the
benchmark's (`bench_stack.py`: its own Cassandra node on 127.0.0.9, two counter shards, two
edges with their Redis instances). The load is open loop at `SOAK_RATE` events/s, by default
half of `SOAK_PEAK` (the counting benchmark's peak: results/bench-counters.json of the last
`make bench-counters` here, else the published 124k events/s; docs/benchmarks.md). Every
`SOAK_SAMPLE_S` seconds it samples, for every process, resident memory, open file
descriptors and CPU (the load generator's too), the edges' journal depth and what the shards
drained from it (acknowledged minus the journals' growth), Cassandra's live sstables, the
reels the counters hold, evicted and loaded back, and prints a progress line. Cassandra's
descriptors into its data folder (a few per live sstable: they follow compaction) are
counted apart from its other descriptors and reported, not judged. The counters run with
`max_reels_in_memory` at SOAK_MAX_REELS_IN_MEMORY (default 40,000 per logical shard, below
the ~54,000 the workload touches per shard). Even so no reel is evicted: the pool is replayed
every ~11.5 s at 87k events/s, faster than a snapshot job (~3 minutes), so no reel is ever
clean (docs/reliability.md, session 8); exercising eviction needs fresh events.

Verdict, first quarter against last quarter of the samples: RSS flat when the last quarter's
median grew by less than 10% or 32 MiB; descriptors flat when the last quarter's maximum grew
by at most 8 or 10%; journal depth flat when the last quarter's median stays below twice the
first quarter's plus one second of load and the journals never held more than 60 s of load.
RSS is judged on the samples after `SOAK_WARMUP_S` (default: the counters'
`minute_buckets_in_memory_s`, 900 s): until then every active reel gains a minute bucket a
minute by design, so the working set fills; the growth per hour over the judged samples
(least squares) is reported beside it. Runs too short to leave 8 samples after the warm-up
judge RSS on all samples. Cassandra's RSS is judged less its memtable pool's largest fill so
far (read over JMX, `memtable_probe.py`): the C allocator keeps what that pool once held, and
the pool is bounded by `memtable_offheap_space`; without readings for every judged sample it
is judged on its raw RSS. Descriptors and the journal are judged on the whole run (a journal
that fills during the warm-up and stays full must not look flat). At the end the journals
must drain and the counts of sampled reels must be exact. Cassandra's GC pauses over 200 ms
under load are counted from its log (`cassandra_gc.py`) and reported, not judged: they are
what slowed the drain of session 14's soak. Results go to results/soak.json.
A report, not a CI test. `python -m loadtest.bench.soak --rejudge FILE` prints the verdict
of a recorded results file under these rules.
"""

from __future__ import annotations

import asyncio
import json
import os
import statistics
import sys
import time
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

import psutil

from counter.config import CounterConfig
from loadtest.bench import bench_cassandra, cassandra_gc
from loadtest.bench.bench_stack import BenchStack
from loadtest.bench.exactness import check_counts, journal_depth, wait_drained
from loadtest.bench.grpc_driver import DriveResult, EdgeTargets, drive_rate
from loadtest.bench.memtable_probe import MemtableProbe
from loadtest.bench.service_metrics import python_gc as python_gc_of
from loadtest.bench.service_metrics import scrape
from loadtest.bench.settings import REPO_ROOT, load_settings
from loadtest.bench.workload import BatchPool, build_pools
from reelstream.infra.cassandra_runtime import MEMTABLE_OFFHEAP_SPACE_MIB

MIB = 1024 * 1024
# The counting peak when no `make bench-counters` result is at hand (docs/benchmarks.md,
# 4 logical shards, 2026-11-26).
BENCH_PEAK_EVENTS_PER_S = 124_000.0
BENCH_RESULTS = REPO_ROOT / "results" / "bench-counters.json"
RESULTS = REPO_ROOT / "results" / "soak.json"
# A full journal (10 M events) drains at the shards' sustained rate: 300 s was too short
# at ~33,000 events/s (session 5's hour: 93,762 events were left). The drain fails when it
# stalls for DRAIN_STALL_S, or at the hard limit.
DRAIN_TIMEOUT_S = 1800.0
DRAIN_STALL_S = 60.0
RSS_GROWTH_RATIO = 0.10
RSS_GROWTH_MIB = 32.0
FD_GROWTH = 8
# A journal that ever held this many seconds of load is not flat, whatever its quarters
# (one that fills in the first quarter and stays full would otherwise pass).
JOURNAL_MAX_BACKLOG_S = 60.0
# RSS flatness needs this many samples after the warm-up, else all samples are judged.
MIN_JUDGED_SAMPLES = 8
# The counters' reel limit during the soak, per logical shard. The workload's pool touches
# ~217,000 distinct reels, ~54,000 per logical shard of 4, under the counters' default
# (100,000). Below it, eviction is attempted, but a reel replayed every ~11.5 s is never
# clean long enough to leave (see the module docstring).
SOAK_MAX_REELS_IN_MEMORY = 40_000
# Cassandra opens a few files per live sstable (data, index); those follow compaction, not
# a leak, so its descriptors into its data folder are counted apart from the rest.
CASSANDRA_DATA_FILES = "cassandra-data-files"


@dataclass(frozen=True)
class SoakSettings:
    seconds: float
    """SOAK_SECONDS: length of the load (3600 by default)."""
    events_per_s: float
    """SOAK_RATE, else half of SOAK_PEAK (default: the benchmark's peak)."""
    sample_s: float
    """SOAK_SAMPLE_S: one sample (and one progress line) per this many seconds."""
    port_offset: int
    """SOAK_PORT_OFFSET: added to every port of the benchmark stack (default 1000)."""
    drain_timeout_s: float = DRAIN_TIMEOUT_S
    """SOAK_DRAIN_TIMEOUT_S: how long the journals may take to drain after the load."""
    drain_stall_s: float = DRAIN_STALL_S
    """SOAK_DRAIN_STALL_S: the drain fails sooner if nothing is acknowledged for this long."""
    warmup_s: float = CounterConfig().minute_buckets_in_memory_s
    """SOAK_WARMUP_S: RSS is judged on the samples after this (the minute buckets' window)."""
    max_reels_in_memory: int = SOAK_MAX_REELS_IN_MEMORY
    """SOAK_MAX_REELS_IN_MEMORY: the counters' `max_reels_in_memory` (per logical shard)
    during the soak; 0 leaves the counters' own setting."""

    @classmethod
    def from_env(cls) -> SoakSettings:
        peak = float(os.environ.get("SOAK_PEAK", measured_peak()))
        return cls(
            seconds=float(os.environ.get("SOAK_SECONDS", 3600)),
            events_per_s=float(os.environ.get("SOAK_RATE", peak / 2)),
            sample_s=float(os.environ.get("SOAK_SAMPLE_S", 30)),
            port_offset=int(os.environ.get("SOAK_PORT_OFFSET", 1000)),
            drain_timeout_s=float(os.environ.get("SOAK_DRAIN_TIMEOUT_S", DRAIN_TIMEOUT_S)),
            drain_stall_s=float(os.environ.get("SOAK_DRAIN_STALL_S", DRAIN_STALL_S)),
            warmup_s=float(
                os.environ.get("SOAK_WARMUP_S", CounterConfig().minute_buckets_in_memory_s)
            ),
            max_reels_in_memory=int(
                os.environ.get("SOAK_MAX_REELS_IN_MEMORY", SOAK_MAX_REELS_IN_MEMORY)
            ),
        )


def measured_peak() -> float:
    """The end-to-end rate of this machine's last `make bench-counters`, else the
    published one: the soak runs at half of what the pipeline carries here."""
    try:
        return float(json.loads(BENCH_RESULTS.read_text())["pipeline_events_per_s"])
    except (OSError, ValueError, KeyError, TypeError):
        return BENCH_PEAK_EVENTS_PER_S


@dataclass
class Sample:
    at_s: float
    rss_mib: dict[str, float]
    open_fds: dict[str, int]
    journal_depth: int
    events_per_s: float
    drained_events_per_s: float
    """What the shards took out of the journals: acknowledged minus the journals' growth."""
    cpu_cores: dict[str, float]
    """CPU per process over the window, in cores (the machine has 2)."""
    cassandra_sstables: int = 0
    """Live sstables of the benchmark's Cassandra node (its open descriptors follow them)."""
    ack_ms: dict[str, float] = field(default_factory=dict)
    """Acknowledgment latency of the window's calls, client side from their scheduled
    send: p50, p99 and max (ms)."""
    counter_reels: dict[str, float] = field(default_factory=dict)
    """Summed over the counters: reels held (`counter_reels`), evicted and loaded back so
    far (`counter_reels_evicted_total`, `counter_reels_loaded_total`)."""
    cassandra_memtables_mib: dict[str, float] = field(default_factory=dict)
    """Cassandra's memtable off-heap MiB, `live` and the `peak` so far (memtable_probe.py);
    empty when the probe had no reading."""


@dataclass
class SoakRun:
    settings: SoakSettings
    samples: list[Sample] = field(default_factory=list)
    runs: list[tuple[BatchPool, DriveResult]] = field(default_factory=list)


def sample_processes(
    pids: dict[str, int], cassandra_data: Path | None = None
) -> tuple[dict[str, float], dict[str, int], dict[str, float]]:
    """RSS (MiB), open descriptors and CPU seconds so far of each live process; gone
    ones are skipped. With `cassandra_data`, the `cassandra` process's descriptors into
    that folder are counted apart, as CASSANDRA_DATA_FILES."""
    rss: dict[str, float] = {}
    fds: dict[str, int] = {}
    cpu_s: dict[str, float] = {}
    for name, pid in pids.items():
        try:
            process = psutil.Process(pid)
            rss[name] = process.memory_info().rss / MIB
            fds[name] = process.num_fds()
            times = process.cpu_times()
            cpu_s[name] = times.user + times.system
        except psutil.Error:
            continue
        if name == "cassandra" and cassandra_data is not None:
            data_files = descriptors_under(pid, cassandra_data)
            fds[name] -= data_files
            fds[CASSANDRA_DATA_FILES] = data_files
    return rss, fds, cpu_s


def descriptors_under(pid: int, folder: Path) -> int:
    """How many of the process's open descriptors point into `folder` (Linux /proc; a
    descriptor closed while they are read is simply not counted)."""
    prefix = str(folder.resolve()) + os.sep
    count = 0
    fd_dir = Path(f"/proc/{pid}/fd")
    try:
        entries = list(fd_dir.iterdir())
    except OSError:
        return 0
    for entry in entries:
        try:
            if os.readlink(entry).startswith(prefix):
                count += 1
        except OSError:
            continue
    return count


REEL_FIGURES = ("counter_reels", "counter_reels_evicted_total", "counter_reels_loaded_total")


def counter_reel_figures(metrics_ports: list[int]) -> dict[str, float]:
    """Reels held, evicted and loaded back, summed over the counters' logical shards and
    processes (an endpoint that does not answer is left out)."""
    scraped = scrape(metrics_ports)
    return {name: scraped[name] for name in REEL_FIGURES if name in scraped}


def sstable_count(data_dir: Path) -> int:
    """Live sstables under a Cassandra data folder: one `*-Data.db` file each (compaction
    may delete files while the folder is walked: they are simply not counted)."""
    try:
        return sum(1 for _ in data_dir.rglob("*-Data.db"))
    except OSError:
        return 0


def cores_used(
    before: dict[str, float], after: dict[str, float], seconds: float
) -> dict[str, float]:
    """CPU per process between two `sample_processes` readings, in cores."""
    return {
        name: round((after[name] - before[name]) / seconds, 2)
        for name in after
        if name in before and seconds > 0
    }


def _quarters(values: list[float]) -> tuple[list[float], list[float]]:
    quarter = max(1, len(values) // 4)
    return values[:quarter], values[-quarter:]


def rss_judged(samples: list[Sample], warmup_s: float) -> tuple[list[Sample], float]:
    """The samples RSS is judged on and the warm-up actually left out: those after
    `warmup_s` when there are at least MIN_JUDGED_SAMPLES of them, else all (0.0)."""
    after = [s for s in samples if s.at_s > warmup_s]
    if len(after) >= MIN_JUDGED_SAMPLES:
        return after, warmup_s
    return samples, 0.0


def growth_per_hour(at_s: list[float], values: list[float]) -> float:
    """Least-squares slope of `values` over time, per hour (0.0 with fewer than 2 points)."""
    if len(at_s) < 2 or len(set(at_s)) < 2:
        return 0.0
    return statistics.linear_regression(at_s, values).slope * 3600.0


def verdict(samples: list[Sample], events_per_s: float, warmup_s: float = 0.0) -> dict[str, Any]:
    """Flatness per process and for the journal: first quarter against last quarter, RSS
    after the warm-up (`rss_judged`)."""
    names = sorted({name for s in samples for name in s.rss_mib})
    judged, warmup_used = rss_judged(samples, warmup_s)
    processes: dict[str, Any] = {}
    for name in names:
        # A process seen only during the warm-up (it died) is judged on what was seen.
        seen = [s for s in judged if name in s.rss_mib] or [s for s in samples if name in s.rss_mib]
        at_s = [s.at_s for s in seen]
        rss = [s.rss_mib[name] for s in seen]
        pool: dict[str, Any] = {}
        if name == "cassandra" and seen and all("peak" in s.cassandra_memtables_mib for s in seen):
            # The allocator keeps what the memtable pool once held (memtable_probe.py).
            pool = memtable_pool(seen)
            rss = [s.rss_mib[name] - s.cassandra_memtables_mib["peak"] for s in seen]
        fds = [float(s.open_fds[name]) for s in samples if name in s.open_fds]
        rss_first, rss_last = _quarters(rss)
        fd_first, fd_last = _quarters(fds)
        growth = statistics.median(rss_last) - statistics.median(rss_first)
        allowed = max(RSS_GROWTH_MIB, RSS_GROWTH_RATIO * statistics.median(rss_first))
        processes[name] = {
            "rss_first_quarter_mib": round(statistics.median(rss_first), 1),
            "rss_last_quarter_mib": round(statistics.median(rss_last), 1),
            "rss_growth_mib_per_h": round(growth_per_hour(at_s, rss), 1),
            "rss_flat": growth < allowed,
            "fds_first_quarter_max": int(max(fd_first)),
            "fds_last_quarter_max": int(max(fd_last)),
            # Cassandra's (without its data files) moves with client connections: 10% or 8.
            "fds_flat": max(fd_last) - max(fd_first) <= max(FD_GROWTH, 0.1 * max(fd_first)),
            **pool,
        }
    depths = [float(s.journal_depth) for s in samples]
    depth_first, depth_last = _quarters(depths)
    depth_limit = 2 * statistics.median(depth_first) + events_per_s
    journal = {
        "depth_first_quarter_median": statistics.median(depth_first),
        "depth_last_quarter_median": statistics.median(depth_last),
        "depth_max": max(depths),
        "flat": statistics.median(depth_last) <= depth_limit
        and max(depths) <= JOURNAL_MAX_BACKLOG_S * events_per_s,
    }
    flat = journal["flat"] and all(p["rss_flat"] and p["fds_flat"] for p in processes.values())
    return {
        "flat": flat,
        "rss_warmup_s": warmup_used,
        "rss_samples_judged": len(judged),
        "processes": processes,
        "journal": journal,
        "cassandra_data": cassandra_data(samples),
    }


def memtable_pool(seen: list[Sample]) -> dict[str, Any]:
    """What Cassandra's RSS is judged without: its memtable pool's peak off-heap MiB, first
    and last quarter medians and the largest, beside the pool's configured size."""
    peaks = [s.cassandra_memtables_mib["peak"] for s in seen]
    first, last = _quarters(peaks)
    rss = [s.rss_mib["cassandra"] for s in seen]
    rss_first, rss_last = _quarters(rss)
    return {
        "rss_judged": "RSS less the memtable pool's peak off-heap bytes",
        "rss_raw_first_quarter_mib": round(statistics.median(rss_first), 1),
        "rss_raw_last_quarter_mib": round(statistics.median(rss_last), 1),
        "memtable_peak_first_quarter_mib": round(statistics.median(first), 1),
        "memtable_peak_last_quarter_mib": round(statistics.median(last), 1),
        "memtable_peak_max_mib": max(peaks),
        "memtable_offheap_space_mib": MEMTABLE_OFFHEAP_SPACE_MIB,
    }


def cassandra_data(samples: list[Sample]) -> dict[str, Any]:
    """Reported beside the verdict, not judged: Cassandra's descriptors into its data
    folder and its live sstables, first and last quarter maxima (they follow compaction)."""
    files = [
        float(s.open_fds[CASSANDRA_DATA_FILES])
        for s in samples
        if CASSANDRA_DATA_FILES in s.open_fds
    ]
    sstables = [float(s.cassandra_sstables) for s in samples]
    report: dict[str, Any] = {}
    for key, values in (("descriptors", files), ("sstables", sstables)):
        if values:
            first, last = _quarters(values)
            report[key] = {"first_quarter_max": int(max(first)), "last_quarter_max": int(max(last))}
    return report


async def hold_load(
    stack: BenchStack,
    pool: BatchPool,
    run: SoakRun,
    pids: dict[str, int],
    memtables: MemtableProbe,
) -> None:
    """Open-loop load in windows of `sample_s`, one sample after each window."""
    settings = run.settings
    targets = EdgeTargets(stack.edge_addresses)
    max_pending = 8 * len(stack.edge_addresses) * 4
    data_dir = bench_cassandra.node().spec().data_dir
    counter_ports = [s.metrics_port for s in stack.specs if s.module == "counter"]
    started = time.monotonic()
    try:
        await targets.wait_ready()
        _, _, cpu_before = await asyncio.to_thread(sample_processes, pids, data_dir)
        # The load generator's CPU too (this process; not in the flatness verdict).
        cpu_before["soak-load"] = time.process_time()
        depth_before, sampled_at = 0, time.monotonic()
        while (elapsed := time.monotonic() - started) < settings.seconds:
            window = min(settings.sample_s, settings.seconds - elapsed)
            result = await drive_rate(
                targets, pool, window, settings.events_per_s, max_pending, "soak"
            )
            run.runs.append((pool, result))
            rss, fds, cpu_after = await asyncio.to_thread(sample_processes, pids, data_dir)
            cpu_after["soak-load"] = time.process_time()
            depth = sum(
                [await asyncio.to_thread(journal_depth, p) for p in stack.edge_metrics_ports]
            )
            now = time.monotonic()
            drained = result.events_per_s - (depth - depth_before) / (now - sampled_at)
            cores = cores_used(cpu_before, cpu_after, now - sampled_at)
            cpu_before, depth_before, sampled_at = cpu_after, depth, now
            sstables = await asyncio.to_thread(sstable_count, data_dir)
            reels = await asyncio.to_thread(counter_reel_figures, counter_ports)
            reading = memtables.reading()
            sample = Sample(
                round(now - started, 1),
                rss,
                fds,
                depth,
                result.events_per_s,
                drained,
                cores,
                sstables,
                {
                    "p50": round(result.latency_ms(0.5), 1),
                    "p99": round(result.latency_ms(0.99), 1),
                    "max": round(result.latency_ms(1.0), 1),
                },
                reels,
                {"live": reading.live_mib, "peak": reading.peak_mib} if reading else {},
            )
            run.samples.append(sample)
            print(
                f"  {sample.at_s:7.0f} s  {sample.events_per_s:9,.0f} ev/s acked"
                f" {drained:9,.0f} drained ({result.skipped} slots skipped,"
                f" errors {dict(result.errors) or 0})  ack p50/p99"
                f" {sample.ack_ms['p50']:.0f}/{sample.ack_ms['p99']:.0f} ms"
                f"  journal {depth:,}  cores "
                + " ".join(f"{n}={v:.2f}" for n, v in sorted(cores.items()))
                + "  rss MiB "
                + " ".join(f"{n}={v:.0f}" for n, v in sorted(rss.items()))
                + "  fds "
                + " ".join(f"{n}={v}" for n, v in sorted(fds.items()))
                + (
                    f"  memtables MiB {reading.live_mib:.0f} (peak {reading.peak_mib:.0f})"
                    if reading
                    else f"  memtables MiB ? ({memtables.last_line[-80:]})"
                )
                + f"  sstables {sstables}  reels held"
                f" {reels.get('counter_reels', 0):,.0f} evicted"
                f" {reels.get('counter_reels_evicted_total', 0):,.0f} loaded"
                f" {reels.get('counter_reels_loaded_total', 0):,.0f}",
                flush=True,
            )
    finally:
        await targets.close()


async def soak(settings: SoakSettings) -> dict[str, Any]:
    bench = load_settings()
    # Ports moved by SOAK_PORT_OFFSET (default 1000): the hour-long soak must not collide
    # with a `make run` stack or a benchmark on the same machine.
    stack = BenchStack(bench.edges, bench.shards, port_offset=settings.port_offset)
    spread, _hot = build_pools(bench)
    run = SoakRun(settings)
    if settings.max_reels_in_memory > 0:
        # The counters inherit this process's environment (stack.start_service).
        os.environ["REELSTREAM_COUNTER_MAX_REELS_IN_MEMORY"] = str(settings.max_reels_in_memory)
    memtables = MemtableProbe(
        # Cassandra's JMX listens on 127.0.0.1 only, whatever the node's address.
        "127.0.0.1",
        bench_cassandra.node().spec().jmx_port,
        min(2.0, settings.sample_s / 3),
    )
    try:
        await asyncio.to_thread(stack.up)
        await memtables.start()
        pids = stack.pids()
        print(
            f"soak: {settings.seconds:.0f} s at {settings.events_per_s:,.0f} events/s,"
            f" sampling {', '.join(sorted(pids))} every {settings.sample_s:.0f} s",
            flush=True,
        )
        started = datetime.now()
        await hold_load(stack, spread, run, pids, memtables)
        ended = datetime.now()
        python_gc = {
            spec.name: await asyncio.to_thread(python_gc_of, spec.metrics_port)
            for spec in stack.specs
        }
        drain: dict[str, Any]
        try:
            drained_s = await wait_drained(
                stack.edge_metrics_ports, settings.drain_timeout_s, settings.drain_stall_s
            )
        except TimeoutError as exc:
            # A verdict, not a traceback: the load outran the shards, so the counts cannot
            # be checked yet (they would be short by the backlog, not wrong).
            left = [await asyncio.to_thread(journal_depth, p) for p in stack.edge_metrics_ports]
            print(f"soak: not drained: {exc}", flush=True)
            drain = {
                "drained": False,
                "timeout_s": settings.drain_timeout_s,
                "events_left": sum(left),
            }
            exactness: dict[str, Any] = {"exact": False, "skipped": "journals not drained"}
        else:
            drain = {"drained": True, "drained_s": round(drained_s, 1)}
            exactness = (await check_counts(run.runs, stack.edge_addresses)).as_dict()
    finally:
        await memtables.close()
        await asyncio.to_thread(stack.down_pipeline)
        await asyncio.to_thread(bench_cassandra.down)
    acked = [s.events_per_s for s in run.samples]
    drained = [s.drained_events_per_s for s in run.samples]
    # The node's log, rolled files included, can be ~100 MB: read it off the event loop.
    log_dir = bench_cassandra.node().spec().log_dir
    pauses = await asyncio.to_thread(cassandra_gc.pauses_between, log_dir, started, ended)
    gc_pauses = cassandra_gc.summary(pauses, started)
    return {
        "seconds": settings.seconds,
        "target_events_per_s": settings.events_per_s,
        "max_reels_in_memory": settings.max_reels_in_memory,
        "acked_events_per_s_median": statistics.median(acked) if acked else 0.0,
        "drained_events_per_s_median": statistics.median(drained) if drained else 0.0,
        "ack_p99_ms_windows": window_spread([s.ack_ms.get("p99", 0.0) for s in run.samples]),
        "drain": drain,
        "exactness": exactness,
        "cassandra_gc_pauses": gc_pauses,
        "python_gc_under_load": python_gc,
        "verdict": (
            verdict(run.samples, settings.events_per_s, settings.warmup_s) if run.samples else {}
        ),
        "samples": [vars(s) for s in run.samples],
    }


def window_spread(values: list[float]) -> dict[str, float]:
    """Median, 90th percentile and maximum of a per-window figure (empty: {})."""
    if not values:
        return {}
    ordered = sorted(values)
    return {
        "median": statistics.median(ordered),
        "p90": ordered[min(len(ordered) - 1, int(0.9 * len(ordered)))],
        "max": ordered[-1],
    }


def rejudge(path: Path, warmup_s: float) -> dict[str, Any]:
    """The verdict of a recorded results file under the current rules (files from before
    the soak sampled CPU and the drained rate judge the same: neither enters the verdict)."""
    recorded = json.loads(path.read_text())
    older = {"drained_events_per_s": 0.0, "cpu_cores": {}}
    samples = [Sample(**{**older, **sample}) for sample in recorded["samples"]]
    return verdict(samples, float(recorded["target_events_per_s"]), warmup_s)


def main(argv: list[str]) -> int:
    settings = SoakSettings.from_env()
    if argv[:1] == ["--rejudge"] and len(argv) == 2:
        try:
            judged = rejudge(Path(argv[1]), settings.warmup_s)
        except (OSError, ValueError, KeyError, TypeError) as exc:
            print(f"soak: cannot judge {argv[1]}: {exc!r}", file=sys.stderr)
            return 2
        print(json.dumps(judged, indent=2))
        return 0 if judged["flat"] else 1
    if argv:
        print("usage: python -m loadtest.bench.soak [--rejudge RESULTS.json]", file=sys.stderr)
        return 2
    results = asyncio.run(soak(settings))
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps(results, indent=2) + "\n")
    flat = results["verdict"].get("flat", False)
    exact = results["exactness"].get("exact", False)
    drained = results["drain"]["drained"]
    gc = results["cassandra_gc_pauses"]
    print(
        f"soak: Cassandra logged {gc['pauses_logged']} GC pauses over 200 ms under load"
        f" ({gc['total_ms']:,} ms in all, longest {gc['longest_ms']:,} ms)",
        flush=True,
    )
    for name, figures in results["python_gc_under_load"].items():
        if figures:
            print(
                f"soak: {name}: {figures['collections']:,.0f} Python GC collections under"
                f" load, {figures['seconds']:,.1f} s in all",
                flush=True,
            )
    counts = ("exact" if exact else "NOT exact") if drained else "not checked (not drained)"
    print(
        f"soak verdict: {'FLAT' if flat else 'NOT FLAT'}; journals"
        f" {'drained' if drained else 'NOT drained'}; counts {counts}; median acked"
        f" {results['acked_events_per_s_median']:,.0f} of {settings.events_per_s:,.0f} ev/s,"
        f" drained {results['drained_events_per_s_median']:,.0f};"
        f" {Path(RESULTS).relative_to(REPO_ROOT)} written",
        flush=True,
    )
    return 0 if flat and drained and exact else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
