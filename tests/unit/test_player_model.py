"""The player model against bandwidth traces: dash.js-like rung choice and its QoE."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from loadtest.abr import AbrParameters, BolaRule, DynamicAbr, ThroughputEstimator
from loadtest.player import BandwidthTrace, PlayerModel, SegmentRequest, simulate

# A vertical short-video ladder (kbps as in the video notes): 360p, 480p, 720p, 1080p.
LADDER_BPS = [650_000.0, 1_200_000.0, 2_700_000.0, 4_800_000.0]
SEGMENT_S = 2.0
KBPS = 1_000.0
MBPS = 1_000_000.0


def reel(seconds: float) -> tuple[list[float], list[list[int]]]:
    """Segment durations and sizes of a reel encoded at exactly the nominal rates."""
    count = int(seconds / SEGMENT_S)
    durations = [SEGMENT_S] * count
    sizes = [[int(rate * SEGMENT_S / 8)] * count for rate in LADDER_BPS]
    return durations, sizes


def play(trace: BandwidthTrace, seconds: float = 60.0, watch_s: float = 1e9) -> PlayerModel:
    durations, sizes = reel(seconds)
    model = PlayerModel(LADDER_BPS, durations, watch_target_s=watch_s)
    simulate(model, sizes, trace, latency_s=0.02)
    return model


def test_steady_rate_settles_on_one_rung_without_oscillating() -> None:
    model = play(BandwidthTrace([3.5 * MBPS]), seconds=120)
    rungs = model.rungs_fetched
    # Starts low (500 kbps assumed), climbs once the first segment is measured, then stays.
    assert rungs[0] == 0
    assert set(rungs[2:]) == {2}
    assert model.report().switches == 1


def test_steady_rate_between_rungs_does_not_oscillate_once_bola_takes_over() -> None:
    model = play(BandwidthTrace([5.0 * MBPS]), seconds=120)
    assert model.abr.using_bola
    rungs = model.rungs_fetched
    # Throughput rule first (2.7 Mbps fits 0.9 x 5), then BOLA climbs once, and stays.
    assert rungs[1] == 2
    assert len(set(rungs[rungs.index(3) :])) == 1, rungs
    assert model.report().switches <= 2


def test_switches_down_when_throughput_falls() -> None:
    # 8 Mbps for 15 s, then a 900 kbps tunnel: the player must go to the lowest rung.
    trace = BandwidthTrace([8 * MBPS] * 15 + [900 * KBPS])
    model = play(trace, seconds=120)
    rungs = model.rungs_fetched
    assert max(rungs[:6]) == 3
    assert rungs[-1] == 0
    first_low = rungs.index(0, 2)
    assert all(r <= 1 for r in rungs[first_low:])


def test_switches_up_again_when_throughput_recovers() -> None:
    trace = BandwidthTrace([900 * KBPS] * 20 + [10 * MBPS])
    model = play(trace, seconds=120)
    assert model.rungs_fetched[-1] == 3


def test_commute_trace_drops_and_recovers_with_few_switches() -> None:
    # Synthetic 1 s samples shaped like a 3G/4G commute trace: good, a tunnel, good again.
    rates_kbps = [6000, 5500, 6200, 5800, 6100, 5900, 4000, 1500, 700, 600, 650, 700, 900]
    rates_kbps += [2500, 4500, 6000, 6200, 5900, 6100, 6000] * 5
    model = play(BandwidthTrace([r * KBPS for r in rates_kbps]), seconds=90)
    rungs = model.rungs_fetched
    assert rungs[1] == 3
    assert min(rungs[2:15]) < 3  # went down in the tunnel
    assert rungs[-1] == 3  # and back up afterwards
    report = model.report()
    assert report.switches <= 4
    assert report.rebuffer_ratio < 0.05


def test_fast_network_starts_quickly_and_never_stalls() -> None:
    report = play(BandwidthTrace([50 * MBPS])).report()
    assert report.startup_s is not None
    assert report.startup_s < 0.3
    assert report.rebuffer_s == 0
    assert report.played_s == 60.0


def test_network_slower_than_the_lowest_rung_rebuffers() -> None:
    report = play(BandwidthTrace([400 * KBPS]), seconds=20).report()
    assert report.rebuffer_ratio > 0.2
    assert report.average_bitrate_bps == LADDER_BPS[0]


def test_bola_caps_the_buffer_instead_of_downloading_the_whole_reel_at_once() -> None:
    durations, sizes = reel(120)
    model = PlayerModel(LADDER_BPS, durations, watch_target_s=1e9)
    trace = BandwidthTrace([50 * MBPS])
    peak_buffer_s = 0.0
    while (request := model.next_request()) is not None:
        model.advance(request.delay_s)
        size = sizes[request.rung][request.index]
        model.segment_loaded(request, size, trace.download_s(model.clock_s, size))
        peak_buffer_s = max(peak_buffer_s, model.buffer_s)
    bola = BolaRule(LADDER_BPS, AbrParameters())
    assert peak_buffer_s <= bola.max_buffer_s(3) + SEGMENT_S
    assert peak_buffer_s < 60


def test_a_viewer_who_swipes_away_fetches_only_what_they_watch() -> None:
    model = play(BandwidthTrace([10 * MBPS]), seconds=60, watch_s=3.0)
    report = model.report()
    assert report.played_s == 3.0
    assert report.segments_fetched == 2


def test_average_bitrate_weights_rungs_by_media_time_watched() -> None:
    model = PlayerModel([1_000.0, 3_000.0], [2.0, 2.0], watch_target_s=3.0)
    model.segment_loaded(SegmentRequest(0, 0, 0.0), 250, 0.1)
    model.segment_loaded(SegmentRequest(1, 1, 0.0), 750, 0.1)
    # 2 s at 1 kbps, then 1 s of the 3 kbps segment: (2 * 1000 + 1 * 3000) / 3.
    assert abs(model.report().average_bitrate_bps - 5_000 / 3) < 1e-6


def test_throughput_estimate_falls_faster_than_it_rises() -> None:
    estimator = ThroughputEstimator(AbrParameters())
    for _ in range(10):
        estimator.add_sample(2.0, 1_000_000, 1.0)  # 8 Mbps
    estimator.add_sample(2.0, 125_000, 1.0)  # 1 Mbps
    after_drop = estimator.estimate_bps
    assert after_drop < 6 * MBPS
    rising = ThroughputEstimator(AbrParameters())
    for _ in range(10):
        rising.add_sample(2.0, 125_000, 1.0)
    rising.add_sample(2.0, 1_000_000, 1.0)
    assert rising.estimate_bps < 3 * MBPS


def test_dynamic_rule_uses_bola_only_with_a_high_buffer() -> None:
    abr = DynamicAbr(LADDER_BPS)
    assert abr.decide(2.0, None).rule == "throughput"
    assert abr.decide(13.0, 1).rule == "bola"
    assert abr.decide(7.0, 1).rule == "bola"  # hysteresis: back only under 6 s
    assert abr.decide(5.0, 1).rule == "throughput"


@settings(max_examples=60, deadline=None)
@given(
    rates=st.lists(st.floats(min_value=200_000, max_value=20_000_000), min_size=1, max_size=40),
    watch_s=st.floats(min_value=0.5, max_value=40.0),
)
def test_any_trace_plays_the_watch_target_with_consistent_accounting(
    rates: list[float], watch_s: float
) -> None:
    model = play(BandwidthTrace(rates), seconds=30, watch_s=watch_s)
    report = model.report()
    assert abs(report.played_s - min(watch_s, 30.0)) < 1e-6
    assert report.rebuffer_s >= 0
    assert report.startup_s is not None
    assert model.clock_s >= report.startup_s + report.played_s + report.rebuffer_s - 1e-6
    assert LADDER_BPS[0] <= report.average_bitrate_bps <= LADDER_BPS[-1]
