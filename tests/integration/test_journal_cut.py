"""The edge journal's cut against a real Redis: client calls keep being journaled while a
cut's MULTI/EXEC is on its way, and nothing is lost or moved twice."""

from __future__ import annotations

import asyncio
import secrets
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import numpy as np
import pytest
from redis.asyncio import Redis

from edge.event_columns import EventColumns
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


async def open_journal(redis: Redis, name: str) -> EdgeJournal:
    journal = EdgeJournal(redis, name, RING, max_events=1_000_000)
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
