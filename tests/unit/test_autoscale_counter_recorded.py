"""The counter tier's autoscaling (`--max-counters`) on metrics recorded from a real counter
process through a load spike.

`data/counter_spike_recording.csv` was written by `scripts/record_autoscale_spike.py` on this
machine (2026-11-27): one counter process serving all 4 logical shards and one edge, ~200
events/s of calm traffic, 25 s (recorded 15-40 s) of three threads sending 1,000-event
batches to the edge as fast as they could (the edge accepted ~100-200k events/s), then calm
again; both processes' /metrics scraped every second. The counter's load is what the edge
forwards: it committed ~35 groups a second throughout, larger ones in the spike. Its CPU
stayed at 0.25-0.53 cores and its backlog at <= 8 batches (under their targets, 0.6 and
64); what rose was the group commit's mean latency, 0.06-0.89 s against 0.01-0.05 s when
calm (target 0.05). At recorded 60-61 s the whole pipeline stalled for 2 s (no commit at
all), and the first commit group after it averaged 0.28 s: one round of an apparent spike
in calm traffic.

The replay is that of tests/unit/test_autoscale_recorded.py: time stretched 15x (one
recorded second = one 15 s round) and the recorded process's numbers shared evenly among
however many counter processes the policy runs at that moment (latency included: above its
calm level it is time waiting for the group commit, which splits with the load; this is the
model's main assumption).
"""

from __future__ import annotations

import dataclasses
import itertools
from pathlib import Path

from reelstream.autoscale_policy import Autoscaler, Decision, MetricReading
from reelstream.autoscaler import TierSpec, default_tiers
from reelstream.metrics_recorder import load_recording

RECORDING = Path(__file__).parent / "data" / "counter_spike_recording.csv"
STRETCH = 15.0
MAX_COUNTERS = 4


def counter_tier() -> TierSpec:
    _, counter = default_tiers(shards=1, min_counters=1, max_counters=MAX_COUNTERS)
    return counter


def replay(tier: TierSpec) -> tuple[list[float], list[Decision]]:
    scaler = Autoscaler(tier.policy())
    scrapes = load_recording(RECORDING)["counter-0"]
    current = 1
    times, decisions = [], []
    for previous, latest in itertools.pairwise(scrapes):
        readings = {}
        for signal in tier.signals:
            total = signal.read(previous, latest)
            if total is not None:  # the recorded process carried everything: share it out
                readings[signal.name] = MetricReading(signal.name, (total / current,) * current)
        decision = scaler.decide(latest.at_s * STRETCH, current, readings)
        times.append(latest.at_s)
        decisions.append(decision)
        current = decision.desired
    return times, decisions


def changes(times: list[float], decisions: list[Decision]) -> list[tuple[float, int, int, str]]:
    return [
        (t, d.current, d.desired, d.reason)
        for t, d in zip(times, decisions, strict=True)
        if d.action != "hold"
    ]


def phases(decisions: list[Decision]) -> list[str]:
    directions = [d.action for d in decisions if d.action != "hold"]
    return [a for i, a in enumerate(directions) if i == 0 or a != directions[i - 1]]


def test_recorded_counter_spike_scales_out_holds_through_the_window_and_comes_back_once() -> None:
    times, decisions = replay(counter_tier())
    replicas = [d.desired for d in decisions]
    at = dict(zip(times, replicas, strict=True))
    why = changes(times, decisions)

    assert {r for t, r in at.items() if t < 15} == {1}, why

    # The spike starts at ~15.5 s recorded: two rounds of agreement, then out, to the
    # ceiling within a few rounds (the proposals climb as the latency does).
    first_up = next(t for t, d in zip(times, decisions, strict=True) if d.action == "scale-up")
    assert 16 <= first_up <= 18, why
    assert "commit_seconds" in decisions[times.index(first_up)].reason
    at_max = next(t for t, r in at.items() if r == MAX_COUNTERS)
    assert at_max <= 25, why

    # The spike ends at ~40 s. No scale-down during it (its dips), and none below any
    # proposal of the last 300 s (20 recorded seconds).
    first_down = next(t for t, d in zip(times, decisions, strict=True) if d.action == "scale-down")
    assert first_down > 41, why
    assert set(r for t, r in at.items() if at_max <= t < first_down) == {MAX_COUNTERS}, why
    for t, d in zip(times, decisions, strict=True):
        window = [e.proposal for s, e in zip(times, decisions, strict=True) if t - 20 < s <= t]
        if d.action == "scale-down":
            assert d.desired >= min(MAX_COUNTERS, max(window)), (t, d)

    # The 2 s stall at 60-61 s (one round reading 2.8x the latency target) scales nothing
    # out: one up phase, one down phase. The recording ends before the window lets the
    # last step (2 -> 1) happen.
    assert phases(decisions) == ["scale-up", "scale-down"], why
    assert replicas[-1] == 2, why


def test_without_the_counters_scale_up_window_the_stall_scales_them_out_again() -> None:
    """The control experiment: the same replay with the HPA's default scale-up behaviour."""
    times, decisions = replay(dataclasses.replace(counter_tier(), scale_up_window_s=0.0))
    assert phases(decisions) == ["scale-up", "scale-down", "scale-up", "scale-down"], changes(
        times, decisions
    )
    stall_up = [t for t, d in zip(times, decisions, strict=True) if d.action == "scale-up"][-1]
    assert 60 < stall_up < 64
