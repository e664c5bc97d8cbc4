"""The edge journal against a real Redis, with calls in flight: they keep being journaled
while a cut's MULTI/EXEC is on its way (nothing lost or moved twice), and they are held,
not refused, while a shard is behind."""

from __future__ import annotations

import asyncio
import contextlib
import secrets
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from typing import Any

import numpy as np
import pytest
from redis.asyncio import Redis

import edge.journal
from edge.config import EdgeConfig
from edge.errors import JournalFull
from edge.event_columns import EventColumns
from edge.event_intake import EventIntake
from edge.forwarding_pressure import ForwardingPressure
from edge.journal import EdgeJournal
from protos import common_pb2
from reelstream.ring import ConsistentHashRing

pytestmark = pytest.mark.timeout(60)

RING = ConsistentHashRing(range(4))


def views(first_reel: int, count: int) -> EventColumns:
    reels = np.arange(first_reel, first_reel + count, dtype=np.uint64)
    return EventColumns(
        reels,
        np.full(count, 7, dtype=np.uint64),
        np.full(count, common_pb2.EVENT_KIND_VIEW, dtype=np.int64),
        np.full(count, 1_700_000_000_000, dtype=np.int64),
    )


class HeldCuts:
    """Holds every MULTI/EXEC of a Redis client until released: before it is sent, or
    after Redis applied it and before its reply is seen."""

    def __init__(self, redis: Redis, when: str) -> None:
        self.entered = asyncio.Event()
        self.release = asyncio.Event()
        original: Callable[..., Any] = redis.pipeline

        def pipeline(*args: Any, **kwargs: Any) -> Any:
            pipe = original(*args, **kwargs)
            execute: Callable[[], Awaitable[Any]] = pipe.execute

            async def held(*_: Any, **__: Any) -> Any:
                if when == "before":
                    self.entered.set()
                    await self.release.wait()
                    return await execute()
                result = await execute()
                self.entered.set()
                await self.release.wait()
                return result

            pipe.execute = held
            return pipe

        redis.pipeline = pipeline  # type: ignore[method-assign]


@pytest.fixture
async def redis(redis_port: int) -> AsyncIterator[Redis]:
    client = Redis(port=redis_port)
    yield client
    await client.aclose()


async def open_journal(
    redis: Redis, name: str, pressure: ForwardingPressure | None = None
) -> EdgeJournal:
    journal = EdgeJournal(redis, name, RING, max_events=1_000_000, pressure=pressure)
    await journal.open()
    return journal


@pytest.mark.parametrize("when", ["before", "after"])
async def test_calls_are_journaled_while_a_cut_waits_for_redis(redis: Redis, when: str) -> None:
    name = f"cut-{secrets.token_hex(4)}"
    journal = await open_journal(redis, name)
    committer = asyncio.create_task(journal.run_group_commit())
    try:
        await asyncio.gather(*(journal.append(views(1 + 100 * i, 10)) for i in range(5)))
        held = HeldCuts(redis, when)
        cutting = asyncio.create_task(journal.cut())
        await held.entered.wait()

        # The cut is on its way to Redis (or its reply is): calls are journaled meanwhile.
        await asyncio.wait_for(
            asyncio.gather(*(journal.append(views(10_000 + 100 * i, 3)) for i in range(4))),
            timeout=10,
        )
        assert not cutting.done()
        held.release.set()
        assert await cutting > 0
    finally:
        journal.close()
        await committer

    cut_events = sum(b.events for batches in journal.outbox.values() for b in batches.values())
    assert cut_events == 50
    assert await redis.llen(f"edge:{name}:journal") == 4  # type: ignore[misc]
    assert journal.depth_events == 62
    # What a restarted edge would load from Redis is what this one holds in memory.
    reloaded = await open_journal(redis, name)
    assert reloaded.depth_events == 62
    assert {s: sorted(b) for s, b in reloaded.outbox.items()} == {
        s: sorted(b) for s, b in journal.outbox.items()
    }
    assert reloaded.journal_views == journal.journal_views
    assert sum(reloaded.journal_views.values()) == 12


class SwitchedPressure(ForwardingPressure):
    """Says the `lagging` shards (every one by default) are behind while `behind` is set
    (the rule itself is unit-tested in test_forwarding_pressure.py; here, what the journal
    does with its answer)."""

    def __init__(self, lagging: tuple[int, ...] = RING.shard_ids) -> None:
        super().__init__(max_backlog_events=1)
        self.behind = False
        self.lagging = list(lagging)

    def lagging_shards(self, backlog: Mapping[int, int], now: float) -> list[int]:
        return self.lagging if self.behind else []


async def journal_behind(redis: Redis, pressure: SwitchedPressure) -> EdgeJournal:
    """A journal whose outbox holds batches (to acknowledge), then shard 0 falls behind."""
    journal = await open_journal(redis, f"admit-{secrets.token_hex(4)}", pressure)
    committer = asyncio.create_task(journal.run_group_commit())
    await journal.append(views(1, 40))
    committer.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await committer
    assert await journal.cut() > 0
    pressure.behind = True
    return journal


async def test_a_call_held_while_a_shard_is_behind_goes_on_when_it_catches_up(
    redis: Redis, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Only the acknowledgment can wake the call in time: its periodic look is far off.
    monkeypatch.setattr(edge.journal, "HOLD_RECHECK_S", 30.0)
    pressure = SwitchedPressure()
    journal = await journal_behind(redis, pressure)
    held = asyncio.create_task(journal.admit(max_wait_s=10))
    await asyncio.sleep(0.3)
    assert not held.done()

    pressure.behind = False
    batch = next(b for batches in journal.outbox.values() for b in batches.values())
    started = time.monotonic()
    await journal.acknowledge(batch)
    await asyncio.wait_for(held, timeout=5)
    assert time.monotonic() - started < 5


def reels_of_shard(shard: int, count: int) -> list[int]:
    return [reel for reel in range(1, 10_000) if RING.shard_for(reel) == shard][:count]


async def test_only_calls_with_events_for_a_shard_behind_are_held(redis: Redis) -> None:
    journal = await journal_behind(redis, SwitchedPressure(lagging=(2,)))
    # Every event for other shards: adds nothing to shard 2's backlog, goes through.
    elsewhere = [r for shard in (0, 1, 3) for r in reels_of_shard(shard, 3)]
    await asyncio.wait_for(journal.admit(max_wait_s=10, reel_ids=elsewhere), timeout=1)
    # One event for shard 2 among them: held, then refused.
    with pytest.raises(JournalFull, match="counter shard 2"):
        await journal.admit(max_wait_s=0.3, reel_ids=[*elsewhere, *reels_of_shard(2, 1)])
    # Unknown reels: any shard behind holds the call.
    with pytest.raises(JournalFull, match="counter shard 2"):
        await journal.admit(max_wait_s=0.3)


async def test_a_call_held_too_long_is_refused(redis: Redis) -> None:
    journal = await journal_behind(redis, SwitchedPressure())
    started = time.monotonic()
    with pytest.raises(JournalFull, match="behind"):
        await journal.admit(max_wait_s=0.5)
    assert time.monotonic() - started >= 0.5


async def test_a_shard_that_stops_counting_as_behind_releases_calls_without_an_ack(
    redis: Redis,
) -> None:
    pressure = SwitchedPressure()
    journal = await journal_behind(redis, pressure)
    held = asyncio.create_task(journal.admit(max_wait_s=10))
    await asyncio.sleep(0.3)
    assert not held.done()
    pressure.behind = False  # e.g. it stopped acknowledging: no longer "working"
    await asyncio.wait_for(held, timeout=1)


async def test_a_caller_with_a_short_deadline_is_refused_within_it(redis: Redis) -> None:
    journal = await journal_behind(redis, SwitchedPressure())
    intake = EventIntake(EdgeConfig(view_dedupe_window_s=0), journal, None)
    batch = common_pb2.EventBatch(
        reel_ids=[3], user_ids=[4], kinds=[common_pb2.EVENT_KIND_VIEW], watch_ms=[5_000]
    )
    started = time.monotonic()
    with pytest.raises(JournalFull):
        await intake.submit(batch, deadline_s=0.4)
    # Held for half the caller's time, not the configured second.
    assert 0.2 <= time.monotonic() - started < 0.8
