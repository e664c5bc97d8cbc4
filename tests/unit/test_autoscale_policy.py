"""The autoscaling policy behaves like the Kubernetes HPA (formula, tolerance, stabilisation,
rate limits, bounds), including on a load spike followed by calm."""

from __future__ import annotations

import itertools
import math

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from reelstream.autoscale_policy import (
    AutoscalePolicy,
    Autoscaler,
    Decision,
    MetricReading,
    MetricTarget,
    RatePolicy,
    ScalingRules,
)

RATE = MetricTarget("events_per_s", 100.0)
DEPTH = MetricTarget("journal_depth", 1000.0)


def policy(**overrides: object) -> AutoscalePolicy:
    fields: dict[str, object] = {"min_replicas": 1, "max_replicas": 20, "targets": (RATE,)}
    fields.update(overrides)
    return AutoscalePolicy(**fields)  # type: ignore[arg-type]


def even(name: str, average: float, replicas: int) -> MetricReading:
    return MetricReading(name, (average,) * replicas)


def test_desired_is_ceil_of_current_times_usage_ratio() -> None:
    decision = Autoscaler(policy()).decide(0.0, 2, {"events_per_s": even("events_per_s", 150, 2)})
    assert decision.desired == 3  # ceil(2 x 150 / 100)
    assert decision.action == "scale-up"
    assert "events_per_s at 1.50x target proposes 3" in decision.reason


def test_change_within_tolerance_band_is_ignored() -> None:
    scaler = Autoscaler(policy())
    assert scaler.decide(0.0, 10, {"events_per_s": even("events_per_s", 109, 10)}).desired == 10
    assert scaler.decide(1.0, 10, {"events_per_s": even("events_per_s", 111, 10)}).desired == 12


def test_highest_proposal_over_metrics_wins() -> None:
    scaler = Autoscaler(policy(targets=(RATE, DEPTH)))
    readings = {
        "events_per_s": even("events_per_s", 150, 4),  # proposes 6
        "journal_depth": even("journal_depth", 2500, 4),  # proposes 10
    }
    decision = scaler.decide(0.0, 4, readings)
    assert decision.desired == 8  # 10, limited to +100 % / +4 per 15 s
    assert decision.proposal == 10
    assert "journal_depth" in decision.reason
    assert "rate limit" in decision.reason


def test_missing_replicas_count_as_idle_when_scaling_up() -> None:
    # One replica at 2x target, one unread: assumed 0, the average is on target: no change.
    reading = MetricReading("events_per_s", (200.0,), missing=1)
    decision = Autoscaler(policy()).decide(0.0, 2, {"events_per_s": reading})
    assert decision.desired == 2
    assert "missing readings" in decision.metrics[0].note


def test_missing_replicas_count_as_on_target_when_scaling_down() -> None:
    reading = MetricReading("events_per_s", (10.0, 10.0), missing=2)
    decision = Autoscaler(policy(scale_down=ScalingRules(0, (RatePolicy("percent", 100, 15),))))
    result = decision.decide(0.0, 4, {"events_per_s": reading})
    # (10 + 10 + 100 + 100) / (4 x 100) = 0.55 -> ceil(0.55 x 4) = 3, not ceil(0.1 x 4) = 1.
    assert result.desired == 3


def test_unreadable_metric_prevents_scale_down_but_not_scale_up() -> None:
    scaler = Autoscaler(
        policy(targets=(RATE, DEPTH), scale_down=ScalingRules(0, (RatePolicy("percent", 100, 15),)))
    )
    low = {"events_per_s": even("events_per_s", 10, 4)}
    held = scaler.decide(0.0, 4, low)
    assert held.desired == 4
    assert "journal_depth unreadable" in held.reason
    high = {"events_per_s": even("events_per_s", 300, 4)}
    assert scaler.decide(1.0, 4, high).desired == 8


def test_nothing_readable_holds() -> None:
    decision = Autoscaler(policy()).decide(0.0, 3, {})
    assert (decision.desired, decision.action) == (3, "hold")
    assert "no metric readable" in decision.reason


def test_a_tier_at_zero_replicas_is_left_alone() -> None:
    decision = Autoscaler(policy(min_replicas=2)).decide(0.0, 0, {})
    assert (decision.desired, decision.action) == (0, "hold")
    assert "disabled" in decision.reason


def test_bounds_are_enforced_even_against_the_metrics() -> None:
    scaler = Autoscaler(policy(min_replicas=2, max_replicas=5))
    assert scaler.decide(0.0, 7, {"events_per_s": even("events_per_s", 500, 7)}).desired == 5
    assert scaler.decide(1.0, 1, {}).desired == 2
    capped = scaler.decide(2.0, 5, {"events_per_s": even("events_per_s", 500, 5)})
    assert capped.desired == 5
    assert capped.action == "hold"


def test_scale_down_waits_for_the_whole_stabilisation_window() -> None:
    scaler = Autoscaler(policy(scale_down=ScalingRules(60, (RatePolicy("percent", 100, 15),))))
    assert scaler.decide(0.0, 4, {"events_per_s": even("events_per_s", 100, 4)}).desired == 4
    for t in (15.0, 30.0, 45.0):
        decision = scaler.decide(t, 4, {"events_per_s": even("events_per_s", 25, 4)})
        assert decision.desired == 4, decision
        assert "held by the 60 s window" in decision.reason
    # The proposal of 4 made at t=0 has left the window (older than 60 s) at t=60.
    assert scaler.decide(60.0, 4, {"events_per_s": even("events_per_s", 25, 4)}).desired == 1


def test_scale_up_window_takes_the_lowest_recent_proposal() -> None:
    rules = ScalingRules(30, (RatePolicy("pods", 100, 15),))
    scaler = Autoscaler(policy(scale_up=rules))
    assert scaler.decide(0.0, 2, {"events_per_s": even("events_per_s", 100, 2)}).desired == 2
    burst = scaler.decide(10.0, 2, {"events_per_s": even("events_per_s", 400, 2)})
    assert burst.desired == 2  # the on-target proposal of t=0 is still in the window
    assert scaler.decide(31.0, 2, {"events_per_s": even("events_per_s", 400, 2)}).desired == 8


def test_scale_up_rate_is_the_larger_of_percent_and_pods_by_default() -> None:
    scaler = Autoscaler(policy(max_replicas=100))
    hot = {"events_per_s": even("events_per_s", 5000, 1)}
    assert scaler.decide(0.0, 1, hot).desired == 5  # max(1 x 2, 1 + 4)
    # Within the same 15 s period the 4 added replicas count against the limit.
    assert scaler.decide(5.0, 5, {"events_per_s": even("events_per_s", 1000, 5)}).desired == 5
    assert scaler.decide(15.0, 5, {"events_per_s": even("events_per_s", 1000, 5)}).desired == 10


def test_select_min_takes_the_stricter_policy_and_disabled_forbids() -> None:
    strict = ScalingRules(0, (RatePolicy("percent", 100, 15), RatePolicy("pods", 1, 15)), "min")
    hot = {"events_per_s": even("events_per_s", 1000, 4)}
    assert Autoscaler(policy(scale_up=strict)).decide(0.0, 4, hot).desired == 5
    frozen = ScalingRules(0, (), "disabled")
    assert Autoscaler(policy(scale_up=frozen)).decide(0.0, 4, hot).desired == 4


def test_scale_down_percent_truncates() -> None:
    rules = ScalingRules(0, (RatePolicy("percent", 50, 60),))
    decision = Autoscaler(policy(scale_down=rules)).decide(
        0.0, 5, {"events_per_s": even("events_per_s", 1, 5)}
    )
    assert decision.desired == 2  # int(5 x 0.5)
    assert "scale-down rate limit" in decision.reason


def test_forgotten_scale_does_not_count_against_the_rate_limit() -> None:
    scaler = Autoscaler(policy(max_replicas=100))
    hot = {"events_per_s": even("events_per_s", 1000, 2)}
    assert scaler.decide(0.0, 2, hot).desired == 6
    scaler.forget_last_scale()  # the start failed: still 2 replicas
    assert scaler.decide(1.0, 2, hot).desired == 6


def test_invalid_policies_are_refused() -> None:
    with pytest.raises(ValueError, match="min_replicas"):
        AutoscalePolicy(3, 2, (RATE,))
    with pytest.raises(ValueError, match="tolerance"):
        AutoscalePolicy(1, 2, (RATE,), tolerance=1.5)
    with pytest.raises(ValueError, match="positive"):
        MetricTarget("x", 0)
    with pytest.raises(ValueError, match="rate policy"):
        RatePolicy("pods", 0, 15)


# --- Properties ------------------------------------------------------------------------------

readings_strategy = st.lists(
    st.tuples(st.floats(0, 2000, allow_nan=False), st.integers(0, 3)), min_size=1, max_size=40
)


@settings(max_examples=150, deadline=None)
@given(st.integers(1, 5), st.integers(0, 15), readings_strategy)
def test_decisions_stay_within_bounds_and_never_shrink_below_a_recent_proposal(
    min_replicas: int, extra: int, series: list[tuple[float, int]]
) -> None:
    bounds = AutoscalePolicy(min_replicas, min_replicas + extra, (RATE,))
    scaler = Autoscaler(bounds)
    current = min_replicas
    history: list[tuple[float, int]] = []
    for step, (average, missing) in enumerate(series):
        now = step * 15.0
        reading = MetricReading(
            "events_per_s", (average,) * current, missing=min(missing, current - 1)
        )
        decision = scaler.decide(now, current, {"events_per_s": reading})
        history.append((now, decision.proposal))
        assert bounds.min_replicas <= decision.desired <= bounds.max_replicas
        if decision.desired < current:
            window = bounds.scale_down.stabilization_window_s
            recent = [p for t, p in history if t > now - window]
            assert decision.desired >= min(max(recent), current)
        if decision.desired > current:
            assert decision.desired <= max(2 * current, current + 4)
        current = decision.desired


@settings(max_examples=150, deadline=None)
@given(st.integers(1, 50), st.floats(0.905, 1.095))
def test_on_target_load_never_changes_anything(replicas: int, ratio: float) -> None:
    reading = even("events_per_s", 100.0 * ratio, replicas)
    decision = Autoscaler(policy(max_replicas=50)).decide(0.0, replicas, {"events_per_s": reading})
    assert decision.desired == replicas
    assert decision.action == "hold"


@settings(max_examples=100, deadline=None)
@given(st.integers(1, 20), st.floats(0, 5000, allow_nan=False), st.floats(0, 5000, allow_nan=False))
def test_more_load_never_proposes_fewer_replicas(replicas: int, a: float, b: float) -> None:
    low, high = sorted((a, b))
    first = Autoscaler(policy()).decide(
        0.0, replicas, {"events_per_s": even("events_per_s", low, replicas)}
    )
    second = Autoscaler(policy()).decide(
        0.0, replicas, {"events_per_s": even("events_per_s", high, replicas)}
    )
    assert second.proposal >= first.proposal


# --- A spike, then calm --------------------------------------------------------------------

# Total edge intake (events/s) sampled every 15 s over 20 minutes: 5 min of baseline around
# 150/s, a 5 min viral spike to ~1,100/s, then calm back at the baseline. The per-replica
# values carry +-8 % of deterministic noise, the kind that makes a naive scaler flap.
INTERVAL_S = 15.0
BASELINE, SPIKE = 150.0, 1100.0


def total_load(step: int) -> float:
    t = step * INTERVAL_S
    base = SPIKE if 300 <= t < 600 else BASELINE
    noise = 0.08 * math.sin(step * 2.3) * math.cos(step * 0.7)
    return base * (1 + noise)


def run_series(scaler: Autoscaler, steps: int, start: int) -> list[Decision]:
    current = start
    decisions = []
    for step in range(steps):
        per_replica = total_load(step) / current  # clients spread the load over the replicas
        decision = scaler.decide(
            step * INTERVAL_S, current, {"events_per_s": even("events_per_s", per_replica, current)}
        )
        decisions.append(decision)
        current = decision.desired
    return decisions


def test_spike_scales_up_fast_then_down_once_after_the_window_without_flapping() -> None:
    scaler = Autoscaler(policy(min_replicas=2, max_replicas=20))
    decisions = run_series(scaler, steps=80, start=2)
    replicas = [d.desired for d in decisions]
    times = [i * INTERVAL_S for i in range(len(replicas))]

    before = [r for r, t in zip(replicas, times, strict=True) if t < 300]
    assert set(before) == {2}, before  # baseline 150/s over 2 replicas: within target

    # Scaled out within 30 s of the spike's start, to enough replicas for ~1,100/s.
    assert replicas[times.index(330.0)] >= 11
    during = [r for r, t in zip(replicas, times, strict=True) if 330 <= t < 600]
    assert min(during) >= 11

    # No scale-down within the 300 s window after the spike ended (last high at t=585).
    held = [r for r, t in zip(replicas, times, strict=True) if 600 <= t < 885]
    assert min(held) >= 11, held
    # ...and back at the baseline size by the end.
    assert replicas[-1] == 2

    # No flapping: the count goes up in one phase and down in one phase, never back up.
    directions = [d.action for d in decisions if d.action != "hold"]
    phases = [a for i, a in enumerate(directions) if i == 0 or a != directions[i - 1]]
    assert phases == ["scale-up", "scale-down"], [
        (d.current, d.desired, d.reason) for d in decisions
    ]
    for decision in decisions:
        assert decision.reason  # every decision says why


def test_without_stabilisation_the_same_series_flaps() -> None:
    """The control experiment: the window is what prevents flapping, not the data."""
    eager = ScalingRules(0, (RatePolicy("percent", 100, 15),))
    scaler = Autoscaler(policy(min_replicas=2, max_replicas=20, tolerance=0.0, scale_down=eager))
    decisions = run_series(scaler, steps=80, start=2)
    directions = [d.action for d in decisions if d.action != "hold"]
    reversals = sum(1 for a, b in itertools.pairwise(directions) if a != b)
    assert reversals > 2
