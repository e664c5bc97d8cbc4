"""Event-loop lag and garbage-collector pauses, exported by every service.

A request's latency includes the time its callbacks wait for the loop: behind blocking work
on the loop, behind a collection, or while the process waits for a core (on a shared
2-core machine, the usual case). The lag of a periodic timer measures all three from
inside; the collector's pauses, timed by `gc.callbacks`, tell one of them apart.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import time
from typing import Any

from prometheus_client import Histogram

LAG_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0)
LOOP_LAG = Histogram(
    "reelstream_event_loop_lag_seconds",
    "How late the event loop ran a periodic timer (blocking work, GC, CPU starvation)",
    buckets=LAG_BUCKETS,
)
GC_PAUSE = Histogram(
    "reelstream_gc_pause_seconds",
    "Duration of garbage collections, by generation",
    ["generation"],
    buckets=LAG_BUCKETS,
)
# A timer every 50 ms: cheap (20 wake-ups a second) and fine enough for p99s of tens of ms.
LAG_INTERVAL_S = 0.05

_gc_started: list[float] = []


def _on_gc(phase: str, info: dict[str, Any]) -> None:
    if phase == "start":
        _gc_started.append(time.perf_counter())
    elif _gc_started:
        GC_PAUSE.labels(str(info.get("generation", "?"))).observe(
            time.perf_counter() - _gc_started.pop()
        )


def time_gc_pauses() -> None:
    """Times every collection from now on (idempotent)."""
    if _on_gc not in gc.callbacks:
        gc.callbacks.append(_on_gc)


async def watch_loop_lag(interval_s: float = LAG_INTERVAL_S) -> None:
    """Observes, until cancelled, how late each `interval_s` timer fires."""
    loop = asyncio.get_running_loop()
    while True:
        due = loop.time() + interval_s
        await asyncio.sleep(interval_s)
        LOOP_LAG.observe(max(0.0, loop.time() - due))


async def stop_watching(task: asyncio.Task[None]) -> None:
    """Cancels a `watch_loop_lag` task and waits for it to end."""
    task.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await task
