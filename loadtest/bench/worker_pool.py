"""Runs a baseline's client in several worker processes and adds up what they did.

The per-event baselines are bound by the Python client's CPU (one driver call or one
pipelined command per event), so "as much concurrency as helps" includes more processes.
Workers are spawned (never forked: the parent holds gRPC and driver threads), each gets its
share of the pooled batches, stops by itself at its deadline, and reports through a queue.
"""

from __future__ import annotations

import multiprocessing
import queue
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field

from loadtest.bench.process_monitor import ProcessMonitor

SPAWN = multiprocessing.get_context("spawn")
START_SLACK_S = 60.0


@dataclass
class WorkerResult:
    """What one worker process sent (`started`/`finished` are wall-clock seconds)."""

    events: int = 0
    started: float = 0.0
    finished: float = 0.0
    errors: Counter[str] = field(default_factory=Counter)
    failure: str = ""


@dataclass(frozen=True)
class WorkerJob:
    """The arguments every worker function receives."""

    payloads: list[bytes]
    offset: int
    stride: int
    start_at: float
    """Wall-clock time at which every worker starts sending (after connecting)."""
    seconds: float
    concurrency: int
    target: str
    """Where to send: a keyspace or a Redis port, depending on the baseline."""


WorkerFunction = Callable[[WorkerJob], WorkerResult]


def _entry(
    function: WorkerFunction, job: WorkerJob, results: multiprocessing.Queue[object]
) -> None:
    try:
        results.put(function(job))
    except Exception as exc:  # reported to the parent instead of dying silently
        results.put(WorkerResult(failure=f"{type(exc).__name__}: {exc}"))


@dataclass
class PoolOutcome:
    events: int
    elapsed_s: float
    errors: Counter[str]
    failures: list[str]

    @property
    def events_per_s(self) -> float:
        return self.events / self.elapsed_s if self.elapsed_s > 0 else 0.0


def run_workers(
    function: WorkerFunction,
    payloads: list[bytes],
    processes: int,
    concurrency: int,
    seconds: float,
    target: str,
    monitor: ProcessMonitor | None = None,
    label: str = "worker",
) -> PoolOutcome:
    """Runs `processes` workers for `seconds` (after a common start) and sums their work.

    With a `monitor`, the workers are tracked as `<label>-client-<i>` and the phase `label`
    is marked from the common start to the last worker's finish.
    """
    results: multiprocessing.Queue[object] = SPAWN.Queue()
    start_at = time.time() + 3.0 + processes  # time to import and connect
    workers = []
    for index in range(processes):
        job = WorkerJob(payloads, index, processes, start_at, seconds, concurrency, target)
        worker = SPAWN.Process(target=_entry, args=(function, job, results), daemon=True)
        worker.start()
        workers.append(worker)
        if monitor is not None and worker.pid is not None:
            monitor.track(f"{label}-client-{index}", worker.pid)
    collected: list[WorkerResult] = []
    deadline = start_at + seconds + START_SLACK_S
    try:
        while len(collected) < processes:
            try:
                item = results.get(timeout=max(0.1, deadline - time.time()))
            except queue.Empty:
                break
            if isinstance(item, WorkerResult):
                collected.append(item)
    finally:
        for worker in workers:
            worker.join(timeout=10)
            if worker.is_alive():
                worker.kill()
                worker.join()
        if monitor is not None:
            monitor.untrack(f"{label}-client-")
    failures = [r.failure for r in collected if r.failure]
    if len(collected) < processes:
        failures.append(f"{processes - len(collected)} worker(s) never reported")
    done = [r for r in collected if not r.failure]
    errors: Counter[str] = Counter()
    for r in done:
        errors.update(r.errors)
    elapsed = max((r.finished for r in done), default=0.0) - min(
        (r.started for r in done), default=0.0
    )
    if monitor is not None and done:
        to_monotonic = time.monotonic() - time.time()
        finished = max(r.finished for r in done)
        monitor.mark(label, start_at + to_monotonic, finished + to_monotonic)
    return PoolOutcome(sum(r.events for r in done), elapsed, errors, failures)
