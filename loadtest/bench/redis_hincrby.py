"""Scenario 3: one Redis HINCRBY per event, pipelined through redis.asyncio.

A throw-away Redis (`bench` on 127.0.0.1:6398, started with the project's launcher, so it has
the same `appendfsync always` durability and CPU priority as the edge journal, and wiped
afterwards) gets `HINCRBY reel:<id> views 1` per counted view and `HINCRBY reel:<id> likes
+-1` per like/unlike: one non-transactional pipeline of 1,000 commands per batch,
`concurrency` pipelines in flight per process. A few (processes, in-flight) settings are
tried briefly and the best is run for the full phase.
"""

from __future__ import annotations

import asyncio
import time

import uvloop
from redis.asyncio import Redis

from loadtest.bench.figures import PhaseFigures
from loadtest.bench.process_monitor import ProcessMonitor
from loadtest.bench.settings import BenchSettings
from loadtest.bench.worker_pool import WorkerJob, WorkerResult, run_workers
from loadtest.bench.workload import LIKE, VIEW, VIEW_THRESHOLD_MS, BatchPool
from protos import common_pb2
from reelstream.infra import redis_server

INSTANCE = "bench"
PORT = 6398
TRIALS: tuple[tuple[int, int], ...] = ((1, 1), (1, 4), (2, 2), (2, 8))
DESIGN = "Redis HINCRBY per event"


async def _send_until_deadline(job: WorkerJob, result: WorkerResult) -> None:
    redis = Redis(host="127.0.0.1", port=int(job.target), max_connections=job.concurrency + 1)
    deadline = job.start_at + job.seconds
    cursor = iter(range(job.offset, 10**12, job.stride))

    async def lane() -> None:
        while time.time() < deadline:
            index = next(cursor) % len(job.payloads)
            batch = common_pb2.EventBatch.FromString(job.payloads[index])
            pipe = redis.pipeline(transaction=False)
            commands = 0
            for reel_id, kind, watch_ms in zip(
                batch.reel_ids, batch.kinds, batch.watch_ms, strict=True
            ):
                if kind == VIEW:
                    if watch_ms >= VIEW_THRESHOLD_MS:
                        pipe.hincrby(f"reel:{reel_id}", "views", 1)
                        commands += 1
                else:
                    pipe.hincrby(f"reel:{reel_id}", "likes", 1 if kind == LIKE else -1)
                    commands += 1
            await pipe.execute()
            result.events += commands

    try:
        await redis.ping()
        await asyncio.sleep(max(0.0, job.start_at - time.time()))
        result.started = time.time()
        async with asyncio.TaskGroup() as group:
            for _ in range(job.concurrency):
                group.create_task(lane())
        result.finished = time.time()
    finally:
        await redis.aclose()


def redis_worker(job: WorkerJob) -> WorkerResult:
    result = WorkerResult()
    with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
        runner.run(_send_until_deadline(job, result))
    return result


def run_redis_hincrby(
    settings: BenchSettings, pool: BatchPool, monitor: ProcessMonitor
) -> tuple[PhaseFigures, list[dict[str, float]]]:
    """Starts the throw-away Redis, tries TRIALS briefly, runs the best, wipes Redis."""
    redis_server.wipe(INSTANCE)
    # At the priority of the edges' journal Redis, so the two designs' Redis run alike. It
    # hardly matters here: three alternated 20 s rounds at 2 x 8 gave 244,440, 251,426 and
    # 243,850 events/s at nice -10 against 243,513, 251,746 and 241,382 at 0 (session 22).
    spec = redis_server.up_journal(INSTANCE, PORT)
    try:
        pid = redis_server.read_pid(spec)
        if pid is not None:
            monitor.track("redis-bench", pid)
        trials: list[dict[str, float]] = []
        for processes, concurrency in TRIALS:
            outcome = run_workers(
                redis_worker, pool.payloads, processes, concurrency, settings.trial_s, str(PORT)
            )
            trials.append(
                {
                    "processes": processes,
                    "in_flight_per_process": concurrency,
                    "events_per_s": outcome.events_per_s,
                }
            )
            print(
                f"  trial {processes} process(es) x {concurrency} pipelines: "
                f"{outcome.events_per_s:,.0f} ev/s {'; '.join(outcome.failures)}",
                flush=True,
            )
        best = max(trials, key=lambda t: t["events_per_s"])
        processes, concurrency = int(best["processes"]), int(best["in_flight_per_process"])
        print(f"  best: {processes} x {concurrency}; {settings.seconds:.0f} s ...", flush=True)
        monitor.wait_quiet("redis-hincrby", settings.quiet_wait_s, settings.quiet_cores)
        outcome = run_workers(
            redis_worker,
            pool.payloads,
            processes,
            concurrency,
            settings.seconds,
            str(PORT),
            monitor,
            "redis-hincrby",
        )
    finally:
        monitor.untrack("redis-bench")
        redis_server.wipe(INSTANCE)
    figures = PhaseFigures(
        design=DESIGN,
        scenario=f"zipf, {processes} process(es) x {concurrency} pipelines of 1,000",
        events_per_s=outcome.events_per_s,
        duration_s=outcome.elapsed_s,
        events=outcome.events,
        cpu_cores=monitor.cpu_summary("redis-hincrby"),
        errors=dict(outcome.errors),
        notes="; ".join(outcome.failures),
    )
    print(f"  Redis HINCRBY: {figures.events_per_s:,.0f} ev/s", flush=True)
    return figures, trials
