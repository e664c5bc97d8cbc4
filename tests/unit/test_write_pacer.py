"""One roll-up budget per counter process, whatever the number of shards drawing on it."""

from __future__ import annotations

import asyncio

import pytest

from counter.write_pacer import WritePacer


async def test_callers_share_one_budget_in_arrival_order() -> None:
    pacer = WritePacer(reels_per_s=1_000)
    first = pacer.reserve(500)  # starts now, holds the budget for 0.5 s
    second = pacer.reserve(500)  # another shard: waits for the first slot
    third = pacer.reserve(250)
    assert first == pytest.approx(0.0, abs=0.01)
    assert second == pytest.approx(0.5, abs=0.01)
    assert third == pytest.approx(1.0, abs=0.01)


async def test_an_idle_budget_is_not_saved_up() -> None:
    pacer = WritePacer(reels_per_s=10_000)
    pacer.reserve(100)  # 10 ms
    await asyncio.sleep(0.05)
    # The budget left unused while idle does not allow a burst later.
    assert pacer.reserve(100) == pytest.approx(0.0, abs=0.01)
    assert pacer.reserve(100) == pytest.approx(0.01, abs=0.005)


def test_the_rate_must_be_positive() -> None:
    with pytest.raises(ValueError, match="positive"):
        WritePacer(reels_per_s=0)


async def test_roll_ups_slow_down_while_commits_are_backed_up() -> None:
    backed_up = False
    pacer = WritePacer(reels_per_s=1_000, busy_reels_per_s=100, busy=lambda: backed_up)
    assert pacer.reserve(100) == pytest.approx(0.0, abs=0.01)  # 0.1 s at the normal rate
    backed_up = True
    assert pacer.reserve(100) == pytest.approx(0.1, abs=0.01)  # then 1 s at the busy rate
    backed_up = False
    assert pacer.reserve(100) == pytest.approx(1.1, abs=0.01)
    assert pacer.reserve(1) == pytest.approx(1.2, abs=0.01)


def test_the_busy_rate_must_be_positive() -> None:
    with pytest.raises(ValueError, match="positive"):
        WritePacer(reels_per_s=100, busy_reels_per_s=0)
