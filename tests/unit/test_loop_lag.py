"""The event-loop lag and GC pause metrics every service exports."""

from __future__ import annotations

import asyncio
import gc
import time

from prometheus_client import REGISTRY

from reelstream.loop_lag import stop_watching, time_gc_pauses, watch_loop_lag


def _sample(name: str, labels: dict[str, str] | None = None) -> float:
    return REGISTRY.get_sample_value(name, labels or {}) or 0.0


def test_a_loop_blocked_for_200_ms_is_seen_as_lag_of_about_that_long() -> None:
    async def block_once() -> None:
        watcher = asyncio.create_task(watch_loop_lag(interval_s=0.01))
        await asyncio.sleep(0.05)
        time.sleep(0.2)  # noqa: ASYNC251 - blocking on purpose, as a slow handler would
        await asyncio.sleep(0.05)
        await stop_watching(watcher)
        assert watcher.cancelled()

    def late_and_total() -> tuple[float, float]:
        count = _sample("reelstream_event_loop_lag_seconds_count")
        on_time = _sample("reelstream_event_loop_lag_seconds_bucket", {"le": "0.1"})
        return count - on_time, _sample("reelstream_event_loop_lag_seconds_sum")

    late_before, lag_before = late_and_total()
    asyncio.run(block_once())
    late_after, lag_after = late_and_total()
    # The timer due during the block fired more than 100 ms late (a busy machine may add
    # more), and the lags add up to most of the block.
    assert late_after - late_before >= 1
    assert lag_after - lag_before >= 0.15


def test_every_collection_is_timed_by_generation() -> None:
    time_gc_pauses()
    time_gc_pauses()  # idempotent: one callback, one observation per collection
    before = _sample("reelstream_gc_pause_seconds_count", {"generation": "2"})
    gc.collect()
    assert _sample("reelstream_gc_pause_seconds_count", {"generation": "2"}) == before + 1
