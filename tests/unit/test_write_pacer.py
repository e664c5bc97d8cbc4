"""One roll-up budget per counter process, whatever the number of shards drawing on it."""

from __future__ import annotations

import asyncio

import pytest

from counter.write_pacer import WritePacer
from tests.unit.fake_clock import FakeClock


def test_callers_share_one_budget_in_arrival_order() -> None:
    pacer = WritePacer(reels_per_s=1_000, clock=FakeClock())
    first = pacer.reserve(500)  # starts now, holds the budget for 0.5 s
    second = pacer.reserve(500)  # another shard: waits for the first slot
    third = pacer.reserve(250)
    assert first == pytest.approx(0.0)
    assert second == pytest.approx(0.5)
    assert third == pytest.approx(1.0)


def test_an_idle_budget_is_not_saved_up() -> None:
    clock = FakeClock()
    pacer = WritePacer(reels_per_s=10_000, clock=clock)
    pacer.reserve(100)  # 10 ms
    clock.now_s += 0.05
    # The budget left unused while idle does not allow a burst later.
    assert pacer.reserve(100) == pytest.approx(0.0)
    assert pacer.reserve(100) == pytest.approx(0.01)


async def test_by_default_the_budget_runs_on_the_loops_clock() -> None:
    pacer = WritePacer(reels_per_s=1_000)
    assert pacer.reserve(500) == pytest.approx(0.0, abs=0.01)
    began = asyncio.get_running_loop().time()
    await pacer.wait_for(1)
    assert asyncio.get_running_loop().time() - began >= 0.45


def test_the_rate_must_be_positive() -> None:
    with pytest.raises(ValueError, match="positive"):
        WritePacer(reels_per_s=0)


def test_roll_ups_slow_down_while_commits_are_backed_up() -> None:
    backed_up = False
    pacer = WritePacer(
        reels_per_s=1_000, busy_reels_per_s=100, busy=lambda: backed_up, clock=FakeClock()
    )
    assert pacer.reserve(100) == pytest.approx(0.0)  # 0.1 s at the normal rate
    backed_up = True
    assert pacer.reserve(100) == pytest.approx(0.1)  # then 1 s at the busy rate
    backed_up = False
    assert pacer.reserve(100) == pytest.approx(1.1)
    assert pacer.reserve(1) == pytest.approx(1.2)


def test_the_busy_rate_must_be_positive() -> None:
    with pytest.raises(ValueError, match="positive"):
        WritePacer(reels_per_s=100, busy_reels_per_s=0)
