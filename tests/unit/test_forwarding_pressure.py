"""An edge refuses calls while a working shard falls behind, never because one is down."""

from __future__ import annotations

from edge.forwarding_pressure import ForwardingPressure


def test_a_working_shard_behind_and_falling_further_is_reported() -> None:
    pressure = ForwardingPressure(max_backlog_events=1_000)
    assert pressure.lagging_shard({0: 500, 1: 0}, now=0.0) is None
    pressure.acknowledged(0, now=0.9)
    # Next window: shard 0 grew past the bound and acknowledged within the window.
    assert pressure.lagging_shard({0: 5_000, 1: 0}, now=1.0) == 0
    # Below the bound again within the window: accepted.
    assert pressure.lagging_shard({0: 900, 1: 0}, now=1.5) is None


def test_a_shard_that_acknowledges_nothing_never_causes_refusals() -> None:
    # Down or moving: its events wait in the journal (the journal's own bound applies).
    pressure = ForwardingPressure(max_backlog_events=1_000)
    pressure.lagging_shard({0: 0}, now=0.0)
    assert pressure.lagging_shard({0: 50_000}, now=1.0) is None
    pressure.acknowledged(0, now=0.5)
    assert pressure.lagging_shard({0: 90_000}, now=2.5) is None  # last ack 2 s ago


def test_a_shrinking_backlog_is_accepted_even_above_the_bound() -> None:
    # After an outage the backlog is large but drains: the edge keeps accepting.
    pressure = ForwardingPressure(max_backlog_events=1_000)
    pressure.lagging_shard({0: 80_000}, now=0.0)
    pressure.acknowledged(0, now=0.95)
    assert pressure.lagging_shard({0: 60_000}, now=1.0) is None
    pressure.acknowledged(0, now=1.9)
    assert pressure.lagging_shard({0: 70_000}, now=2.0) == 0  # growing again


def test_zero_disables_the_rule() -> None:
    pressure = ForwardingPressure(max_backlog_events=0)
    pressure.acknowledged(0, now=0.0)
    assert pressure.lagging_shard({0: 10**9}, now=5.0) is None
