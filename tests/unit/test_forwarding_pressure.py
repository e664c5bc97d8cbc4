"""An edge holds calls while a working shard falls behind, never because one is down."""

from __future__ import annotations

from edge.forwarding_pressure import ForwardingPressure


def run_shard(
    pressure: ForwardingPressure,
    backlog: int,
    growth_per_s: int,
    start: float,
    seconds: float,
    acknowledging: bool = True,
) -> tuple[int, float, int | None]:
    """Feeds shard 0 for `seconds` in 100 ms steps; returns (backlog, now, last answer)."""
    now, answer = start, None
    for _ in range(round(seconds * 10)):
        now += 0.1
        backlog += growth_per_s // 10
        if acknowledging:
            pressure.acknowledged(0, now)
        lagging = pressure.lagging_shards({0: backlog, 1: 0}, now)
        assert lagging in ([], [0])
        answer = lagging[0] if lagging else None
    return backlog, now, answer


def test_a_working_shard_behind_and_falling_further_is_reported() -> None:
    pressure = ForwardingPressure(max_backlog_events=1_000)
    backlog, now, answer = run_shard(pressure, 500, 10_000, 0.0, 1.0)
    assert backlog > 1_000
    assert answer == 0
    # Below the bound again: accepted at once.
    assert pressure.lagging_shards({0: 900, 1: 0}, now=now + 0.05) == []


def test_a_backlog_that_grows_again_is_held_within_the_window() -> None:
    # The window slides: having shrunk over the last second buys no free second after it.
    pressure = ForwardingPressure(max_backlog_events=1_000)
    backlog, now, answer = run_shard(pressure, 80_000, -10_000, 0.0, 1.5)
    assert answer is None
    _, _, answer = run_shard(pressure, backlog, 30_000, now, 0.6)
    assert answer == 0  # 0.4 s at -10,000/s and 0.6 s at +30,000/s: grew over the second


def test_a_shard_that_acknowledges_nothing_never_causes_holds() -> None:
    # Down or moving: its events wait in the journal (the journal's own bound applies).
    pressure = ForwardingPressure(max_backlog_events=1_000)
    _, now, answer = run_shard(pressure, 0, 50_000, 0.0, 2.0, acknowledging=False)
    assert answer is None
    pressure.acknowledged(0, now=now)
    assert pressure.lagging_shards({0: 200_000}, now=now + 0.5) == [0]
    assert pressure.lagging_shards({0: 250_000}, now=now + 2.5) == []  # last ack 2 s ago


def test_a_backlog_draining_after_an_outage_is_accepted_above_the_bound() -> None:
    pressure = ForwardingPressure(max_backlog_events=1_000)
    _, _, answer = run_shard(pressure, 800_000, -40_000, 0.0, 3.0)
    assert answer is None


def test_zero_disables_the_rule() -> None:
    pressure = ForwardingPressure(max_backlog_events=0)
    _, _, answer = run_shard(pressure, 10**6, 10**6, 0.0, 2.0)
    assert answer is None


def test_a_shard_slowed_down_briefly_is_held_only_above_twice_the_bound() -> None:
    # A flush or a collection stalls the commits for a few seconds at moderate load:
    # holding would only delay callers whose events are durable anyway.
    pressure = ForwardingPressure(max_backlog_events=1_000)
    backlog, now, answer = run_shard(pressure, 500, 1_000, 0.0, 1.4)
    assert 1_000 < backlog <= 2_000
    assert answer is None
    backlog, now, answer = run_shard(pressure, backlog, 1_000, now, 0.8)
    assert backlog > 2_000
    assert answer == 0


def test_once_overloaded_the_bound_itself_applies_until_it_stops_falling_behind() -> None:
    pressure = ForwardingPressure(max_backlog_events=1_000)
    _, now, answer = run_shard(pressure, 500, 20_000, 0.0, 0.3)
    assert answer == 0  # beyond twice the bound: overload
    _, now, answer = run_shard(pressure, 1_200, -1_000, now, 1.0)
    assert answer is None  # shrinking
    _, now, answer = run_shard(pressure, 1_200, 2_000, now, 0.2)
    assert answer == 0  # above the bound and growing within the overload memory
    _, now, answer = run_shard(pressure, 1_500, -1_000, now, 2.5)
    assert answer is None
    _, _, answer = run_shard(pressure, 1_200, 1_000, now, 0.5)
    assert answer is None  # the memory ended: below twice the bound is accepted again


def test_every_shard_behind_is_reported() -> None:
    # A call is held only for the shards it has events for, so each one behind counts.
    pressure = ForwardingPressure(max_backlog_events=1_000)
    answer: list[int] = []
    for step in range(1, 11):
        now = step * 0.1
        for shard in (0, 1, 2):
            pressure.acknowledged(shard, now)
        answer = pressure.lagging_shards({0: 3_000 * step, 1: 500, 2: 4_000 * step}, now)
    assert answer == [0, 2]
