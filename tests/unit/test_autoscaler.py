"""The autoscaling controller turns metrics pages into per-replica signals, decides with the
policy, logs every decision with its reason and drives (or, dry-running, does not drive) the
actuator."""

from __future__ import annotations

import logging

import pytest

from reelstream.autoscaler import (
    AutoscaleController,
    Replica,
    ScaleRefused,
    SignalSpec,
    StaticDirectory,
    TierSpec,
    default_tiers,
    main,
)
from reelstream.metrics_scrape import Scrape, ScrapeError, parse_metrics

PAGE = """\
# HELP edge_journal_depth_events Events accepted but not yet acknowledged
# TYPE edge_journal_depth_events gauge
edge_journal_depth_events 1500.0
# HELP edge_batches_acknowledged_total Batches acknowledged
# TYPE edge_batches_acknowledged_total counter
edge_batches_acknowledged_total{shard="0"} 10.0
edge_batches_acknowledged_total{shard="1"} 5.0
edge_batches_acknowledged_created{shard="0"} 1.7e9
# HELP counter_commit_seconds Group commit latency
# TYPE counter_commit_seconds histogram
counter_commit_seconds_bucket{le="0.1"} 3.0
counter_commit_seconds_bucket{le="+Inf"} 4.0
counter_commit_seconds_count 4.0
counter_commit_seconds_sum 0.2
"""


def test_pages_are_summed_over_labels_without_buckets() -> None:
    values = parse_metrics(PAGE)
    assert values["edge_journal_depth_events"] == 1500.0
    assert values["edge_batches_acknowledged_total"] == 15.0
    assert values["counter_commit_seconds_sum"] == pytest.approx(0.2)
    assert not any(name.endswith(("_bucket", "_created")) for name in values)


def test_garbage_is_a_scrape_error() -> None:
    with pytest.raises(ScrapeError):
        parse_metrics("this is { not metrics")


def test_rates_and_means_need_two_scrapes_and_survive_restarts() -> None:
    rate = SignalSpec("acks", "rate", "edge_batches_acknowledged_total", 1.0)
    mean = SignalSpec("commit", "mean", "counter_commit_seconds", 1.0)
    first = Scrape(
        0.0,
        {
            "edge_batches_acknowledged_total": 100.0,
            "counter_commit_seconds_sum": 1.0,
            "counter_commit_seconds_count": 10.0,
        },
    )
    second = Scrape(
        10.0,
        {
            "edge_batches_acknowledged_total": 150.0,
            "counter_commit_seconds_sum": 3.0,
            "counter_commit_seconds_count": 20.0,
        },
    )
    restarted = Scrape(
        20.0,
        {
            "edge_batches_acknowledged_total": 3.0,
            "counter_commit_seconds_sum": 0.1,
            "counter_commit_seconds_count": 1.0,
        },
    )
    assert rate.read(None, first) is None
    assert rate.read(first, second) == 5.0
    assert mean.read(first, second) == pytest.approx(0.2)
    assert rate.read(second, restarted) is None
    assert mean.read(second, restarted) is None
    idle = Scrape(30.0, dict(second.values))
    assert mean.read(second, idle) == 0.0


class FakeSource:
    """Canned metrics pages by URL; a URL missing from `pages` fails to scrape."""

    def __init__(self) -> None:
        self.pages: dict[str, str] = {}

    def fetch(self, url: str) -> str:
        if url not in self.pages:
            raise ScrapeError(f"{url}: connection refused")
        return self.pages[url]


class FakeClock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


class RecordingActuator:
    def __init__(self, refuse: bool = False) -> None:
        self.calls: list[tuple[str, int, int]] = []
        self.refuse = refuse

    def scale(self, tier: str, current: int, desired: int) -> None:
        if self.refuse:
            raise ScaleRefused(f"{tier}: not here")
        self.calls.append((tier, current, desired))


def depth_page(depth: float, accepted: float) -> str:
    return (
        "# TYPE edge_journal_depth_events gauge\n"
        f"edge_journal_depth_events {depth}\n"
        "# TYPE edge_events_accepted_total counter\n"
        f"edge_events_accepted_total {accepted}\n"
    )


EDGE = TierSpec(
    "edge",
    (
        SignalSpec("journal_depth_events", "gauge", "edge_journal_depth_events", 1000.0),
        SignalSpec("events_per_s", "rate", "edge_events_accepted_total", 100.0),
    ),
    min_replicas=1,
    max_replicas=6,
    scale_down_window_s=60.0,
)


def two_edges() -> StaticDirectory:
    return StaticDirectory(
        {"edge": [Replica("edge-0", "http://e0/metrics"), Replica("edge-1", "http://e1/metrics")]}
    )


def test_a_deep_journal_scales_edges_up_and_says_why(caplog: pytest.LogCaptureFixture) -> None:
    source, clock, actuator = FakeSource(), FakeClock(), RecordingActuator()
    source.pages = {
        "http://e0/metrics": depth_page(3000, 0),
        "http://e1/metrics": depth_page(3000, 0),
    }
    controller = AutoscaleController([EDGE], two_edges(), actuator, source=source, clock=clock)
    with caplog.at_level(logging.INFO, logger="reelstream.autoscaler"):
        (result,) = controller.run_round()
    assert (result.decision.current, result.decision.desired) == (2, 6)  # max(+100 %, +4)
    assert result.applied
    assert actuator.calls == [("edge", 2, 6)]
    # The rate signal has no previous scrape yet: both replicas count as missing.
    assert result.readings["events_per_s"].missing == 2
    record = caplog.records[-1]
    fields = record.fields  # type: ignore[attr-defined]
    assert fields["action"] == "scale-up"
    assert "journal_depth_events at 3.00x target proposes 6" in fields["reason"]


def test_rate_signal_drives_the_decision_on_the_second_round() -> None:
    source, clock = FakeSource(), FakeClock()
    source.pages = {"http://e0/metrics": depth_page(0, 0), "http://e1/metrics": depth_page(0, 0)}
    controller = AutoscaleController([EDGE], two_edges(), None, source=source, clock=clock)
    assert controller.run_round()[0].decision.action == "hold"  # no signal says anything yet
    clock.now = 15.0
    source.pages = {
        "http://e0/metrics": depth_page(0, 4500),
        "http://e1/metrics": depth_page(0, 4500),
    }
    (result,) = controller.run_round()
    assert result.readings["events_per_s"].values == (300.0, 300.0)
    assert result.decision.desired == 6
    assert not result.applied  # dry run


def test_a_replica_that_cannot_be_scraped_blocks_scale_down() -> None:
    source, clock, actuator = FakeSource(), FakeClock(), RecordingActuator()
    source.pages = {"http://e0/metrics": depth_page(10, 0)}
    controller = AutoscaleController([EDGE], two_edges(), actuator, source=source, clock=clock)
    for step in range(10):
        clock.now = step * 15.0
        (result,) = controller.run_round()
        assert result.decision.desired == 2, result.decision
    assert actuator.calls == []


def test_calm_edges_scale_down_only_after_the_window() -> None:
    source, clock, actuator = FakeSource(), FakeClock(), RecordingActuator()
    source.pages = {"http://e0/metrics": depth_page(10, 0), "http://e1/metrics": depth_page(10, 0)}
    controller = AutoscaleController([EDGE], two_edges(), actuator, source=source, clock=clock)
    desired = []
    for step in range(6):
        clock.now = step * 15.0
        desired.append(controller.run_round()[0].decision.desired)
    # The history starts with the current count (2) at t=0; rounds from t=15 on propose 1,
    # effective at t=60, when t=0 leaves the 60 s window. Round 0 cannot shrink anyway: the
    # rate signal has no previous scrape yet.
    assert desired == [2, 2, 2, 2, 1, 1]
    assert actuator.calls[0] == ("edge", 2, 1)


def test_a_refused_scale_is_logged_and_not_counted(caplog: pytest.LogCaptureFixture) -> None:
    source, clock, actuator = FakeSource(), FakeClock(), RecordingActuator(refuse=True)
    source.pages = {
        "http://e0/metrics": depth_page(5000, 0),
        "http://e1/metrics": depth_page(5000, 0),
    }
    controller = AutoscaleController([EDGE], two_edges(), actuator, source=source, clock=clock)
    with caplog.at_level(logging.INFO, logger="reelstream.autoscaler"):
        (result,) = controller.run_round()
    assert not result.applied
    assert result.error == "edge: not here"
    assert caplog.records[-1].levelno == logging.WARNING


def test_default_tiers_pin_counter_shards_to_the_ring_size() -> None:
    edge, counter = default_tiers(max_edges=5, shards=3)
    assert (edge.min_replicas, edge.max_replicas) == (1, 5)
    assert (counter.min_replicas, counter.max_replicas) == (3, 3)
    assert {s.metric for s in edge.signals} >= {
        "edge_journal_depth_events",
        "process_cpu_seconds_total",
    }


def test_cli_dry_run_against_unreachable_targets_holds(capsys: pytest.CaptureFixture[str]) -> None:
    assert (
        main(["--targets", "edge=http://127.0.0.1:1/metrics", "--rounds", "1", "--interval", "0"])
        == 0
    )
    err = capsys.readouterr().err
    assert "scrape failed" in err
    assert "action=hold" in err
    assert "no metric readable" in err


def test_default_tiers_let_counters_range_when_asked() -> None:
    _, counter = default_tiers(shards=2, min_counters=1, max_counters=4)
    assert (counter.min_replicas, counter.max_replicas) == (1, 4)


def test_local_actuator_resizes_counters_like_make_scale_keeping_the_edges(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from reelstream import local_scaling, stack

    calls: list[tuple[int, int]] = []
    monkeypatch.setattr(
        local_scaling.LocalStackDirectory,
        "replicas",
        lambda self, tier: [Replica(f"{tier}-{i}", "") for i in range(3 if tier == "edge" else 2)],
    )
    monkeypatch.setattr(
        stack, "resize", lambda edges, shards, timeout_s: calls.append((edges, shards))
    )
    local_scaling.LocalStackActuator().scale("counter", 2, 4)
    assert calls == [(3, 4)]
    with pytest.raises(ScaleRefused, match="origin"):
        local_scaling.LocalStackActuator().scale("origin", 1, 2)


def test_cli_refuses_more_counters_than_the_local_ports_allow(
    capsys: pytest.CaptureFixture[str],
) -> None:
    with pytest.raises(SystemExit):
        main(["--max-counters", "9", "--dry-run"])
    assert "room for 8 counters" in capsys.readouterr().err


def test_cli_refuses_impossible_bounds(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        main(["--min-edges", "5", "--max-edges", "2", "--dry-run"])
    with pytest.raises(SystemExit):
        main(["--max-edges", "11", "--dry-run"])  # edge-10 would collide with counter-0's ports
    assert "room for 10 edges" in capsys.readouterr().err
