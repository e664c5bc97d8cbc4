"""The autoscaling policy on metrics recorded from a real edge through a load spike.

`data/edge_spike_recording.csv` was written by `scripts/record_autoscale_spike.py`: one edge
and one counter shard on this machine, ~200 events/s of calm traffic, 25 s of three threads
sending 1,000-event batches as fast as they could (peaks near 300k events/s, 0.9 cores and a
journal 200k events deep, with a dip in the middle), then calm again; /metrics scraped every
second. The replay stretches time 15x (one recorded second = one 15 s autoscaler round, so
the spike lasts about six minutes) and spreads the recorded single-edge load evenly over
however many edges the policy runs at that moment.
"""

from __future__ import annotations

import itertools
from pathlib import Path

from reelstream.autoscale_policy import Autoscaler, Decision, MetricReading
from reelstream.autoscaler import default_tiers
from reelstream.metrics_recorder import load_recording

RECORDING = Path(__file__).parent / "data" / "edge_spike_recording.csv"
STRETCH = 15.0


def replay() -> tuple[list[float], list[Decision]]:
    edge, _ = default_tiers(max_edges=8)
    scaler = Autoscaler(edge.policy())
    scrapes = load_recording(RECORDING)["edge-0"]
    current = 1
    times, decisions = [], []
    for previous, latest in itertools.pairwise(scrapes):
        readings = {}
        for signal in edge.signals:
            total = signal.read(previous, latest)
            if total is not None:  # the recorded edge carried everything: share it out
                readings[signal.name] = MetricReading(signal.name, (total / current,) * current)
        now = latest.at_s * STRETCH
        decision = scaler.decide(now, current, readings)
        times.append(latest.at_s)
        decisions.append(decision)
        current = decision.desired
    return times, decisions


def test_recorded_spike_scales_out_fast_and_back_in_once_without_flapping() -> None:
    times, decisions = replay()
    replicas = [d.desired for d in decisions]
    at = dict(zip(times, replicas, strict=True))

    calm_before = [r for t, r in at.items() if t < 15]
    assert set(calm_before) == {1}, calm_before

    # The spike starts at ~15.5 s recorded: scaled out within two rounds (30 s of replay).
    spike_start = next(t for t, d in zip(times, decisions, strict=True) if d.action == "scale-up")
    assert 15 <= spike_start <= 19
    peak = max(replicas)
    assert peak >= 3
    assert max(r for t, r in at.items() if t <= spike_start + 2) >= 3

    # The spike ends at ~41 s recorded. No scale-down during its dip or within 300 s (20
    # recorded seconds) after its last high proposal.
    last_high = max(t for t, d in zip(times, decisions, strict=True) if d.proposal >= 3)
    during_and_after = [r for t, r in at.items() if spike_start < t < last_high + 300 / STRETCH]
    assert min(during_and_after) >= 3, during_and_after
    assert replicas[-1] == 1

    directions = [d.action for d in decisions if d.action != "hold"]
    phases = [a for i, a in enumerate(directions) if i == 0 or a != directions[i - 1]]
    assert phases == ["scale-up", "scale-down"], [
        (t, d.current, d.desired, d.reason)
        for t, d in zip(times, decisions, strict=True)
        if d.action != "hold"
    ]
