"""Scenario 2, the naive design: one Cassandra counter UPDATE per event.

`UPDATE reel_counts SET views = views + 1 WHERE reel_id = ?` (likes: `+ 1`/`- 1`) in a
keyspace of its own (`bench_naive`, replication factor 1, dropped and recreated before the
run) on the benchmark's Cassandra node (`bench_cassandra.py`), prepared, through the same
DataStax driver the pipeline uses, with the driver's own concurrent executor keeping
`concurrency` requests in flight per process. The view rule
(watch >= 3 s) is applied as the edge would. A few (processes, in-flight) settings are
tried briefly and the best is run for the full phase.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any

from cassandra.cluster import Cluster
from cassandra.concurrent import execute_concurrent

from loadtest.bench.bench_cassandra import ADDRESS
from loadtest.bench.cassandra_metrics import CassandraAdmin
from loadtest.bench.figures import PhaseFigures
from loadtest.bench.process_monitor import ProcessMonitor
from loadtest.bench.settings import BenchSettings
from loadtest.bench.worker_pool import PoolOutcome, WorkerJob, WorkerResult, run_workers
from loadtest.bench.workload import LIKE, VIEW, VIEW_THRESHOLD_MS, BatchPool
from protos import common_pb2

KEYSPACE = "bench_naive"
TRIALS: tuple[tuple[int, int], ...] = ((1, 128), (1, 512), (2, 256), (3, 256))
DESIGN = "naive Cassandra counters"


def _statements(job: WorkerJob, views: Any, likes: Any) -> Iterator[tuple[Any, tuple[int, ...]]]:
    index = job.offset
    deadline = job.start_at + job.seconds
    while time.time() < deadline:
        batch = common_pb2.EventBatch.FromString(job.payloads[index % len(job.payloads)])
        index += job.stride
        for reel_id, kind, watch_ms in zip(
            batch.reel_ids, batch.kinds, batch.watch_ms, strict=True
        ):
            if kind == VIEW:
                if watch_ms >= VIEW_THRESHOLD_MS:
                    yield views, (reel_id,)
            else:
                yield likes, (1 if kind == LIKE else -1, reel_id)


def naive_worker(job: WorkerJob) -> WorkerResult:
    """One process: connects, waits for the common start, updates until the deadline."""
    cluster = Cluster([ADDRESS])
    try:
        session = cluster.connect(job.target)
        views = session.prepare("UPDATE reel_counts SET views = views + 1 WHERE reel_id = ?")
        likes = session.prepare("UPDATE reel_counts SET likes = likes + ? WHERE reel_id = ?")
        time.sleep(max(0.0, job.start_at - time.time()))
        result = WorkerResult(started=time.time())
        outcomes = execute_concurrent(
            session,
            _statements(job, views, likes),
            concurrency=job.concurrency,
            raise_on_first_error=False,
            results_generator=True,
        )
        for success, outcome in outcomes:
            if success:
                result.events += 1
            else:
                result.errors[type(outcome).__name__] += 1
        result.finished = time.time()
        return result
    finally:
        cluster.shutdown()


def _prepare_keyspace(admin: CassandraAdmin) -> None:
    admin.drop_keyspace(KEYSPACE)
    admin.execute(
        f"CREATE KEYSPACE {KEYSPACE} WITH replication = "
        "{'class': 'SimpleStrategy', 'replication_factor': 1}"
    )
    admin.execute(
        f"CREATE TABLE {KEYSPACE}.reel_counts (reel_id bigint PRIMARY KEY, "
        "views counter, likes counter)"
    )


def run_naive_cassandra(
    settings: BenchSettings, pool: BatchPool, monitor: ProcessMonitor
) -> tuple[PhaseFigures, list[dict[str, float]]]:
    """Tries each setting of TRIALS briefly, then runs the best for the full phase."""
    admin = CassandraAdmin()
    try:
        _prepare_keyspace(admin)
        trials: list[dict[str, float]] = []
        for processes, concurrency in TRIALS:
            outcome = run_workers(
                naive_worker, pool.payloads, processes, concurrency, settings.trial_s, KEYSPACE
            )
            trials.append(
                {
                    "processes": processes,
                    "in_flight_per_process": concurrency,
                    "events_per_s": outcome.events_per_s,
                }
            )
            print(
                f"  trial {processes} process(es) x {concurrency} in flight: "
                f"{outcome.events_per_s:,.0f} ev/s {_problems(outcome)}",
                flush=True,
            )
        best = max(trials, key=lambda t: t["events_per_s"])
        processes, concurrency = int(best["processes"]), int(best["in_flight_per_process"])
        print(f"  best: {processes} x {concurrency}; {settings.seconds:.0f} s ...", flush=True)
        monitor.wait_quiet("naive-cassandra", settings.quiet_wait_s, settings.quiet_cores)
        before = admin.write_counts(KEYSPACE)
        outcome = run_workers(
            naive_worker,
            pool.payloads,
            processes,
            concurrency,
            settings.seconds,
            KEYSPACE,
            monitor,
            "naive-cassandra",
        )
        writes = admin.write_counts(KEYSPACE) - before
        admin.drop_keyspace(KEYSPACE)
    finally:
        admin.close()
    figures = PhaseFigures(
        design=DESIGN,
        scenario=f"zipf, {processes} process(es) x {concurrency} in flight",
        events_per_s=outcome.events_per_s,
        duration_s=outcome.elapsed_s,
        events=outcome.events,
        cassandra_writes_per_s=writes.local / outcome.elapsed_s if outcome.elapsed_s else 0.0,
        cassandra_coordinator_writes_per_s=(
            writes.coordinator / outcome.elapsed_s if outcome.elapsed_s else 0.0
        ),
        cpu_cores=monitor.cpu_summary("naive-cassandra"),
        errors=dict(outcome.errors),
        notes="; ".join(outcome.failures),
    )
    print(f"  naive Cassandra: {figures.events_per_s:,.0f} ev/s {_problems(outcome)}", flush=True)
    return figures, trials


def _problems(outcome: PoolOutcome) -> str:
    parts = [f"{n} {name}" for name, n in outcome.errors.items()] + outcome.failures
    return f"({'; '.join(parts)})" if parts else ""
