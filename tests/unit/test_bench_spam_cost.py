"""The spam-cost benchmark's arithmetic: rates per configuration, the on/off comparison
against issue 5's 20 % target, CPU by tier, the workload's IP hashes and user pacing, and
the stack it starts in each configuration."""

from __future__ import annotations

import numpy as np
import pytest

from edge.config import EdgeConfig
from loadtest.bench.bench_stack import bench_specs
from loadtest.bench.spam_cost import (
    SpamCostSettings,
    ip_hashes_of,
    round_order,
    user_pacing,
    with_ip_hashes,
)
from loadtest.bench.spam_cost_report import (
    Phase,
    added_cost,
    mean_by_key,
    rate_summary,
    summarize,
    tier_cores,
    unexplained,
)
from loadtest.bench.workload import BatchPool
from protos import common_pb2


def phase(config: str, number: int, rate: float, cpu: dict[str, float]) -> Phase:
    return Phase(
        config=config,
        round=number,
        events_per_s=rate,
        acked_events_per_s=rate * 1.5,
        backlog_change=0,
        ack_p99_ms=10.0,
        drain_s=1.0,
        cpu_cores=cpu,
        metrics={"edge_events_accepted_total": rate},
        exactness={"exact": True, "exact_after_spam_removals": True},
    )


def test_rate_summary_is_median_min_and_max() -> None:
    assert rate_summary([90.0, 110.0, 100.0]) == {
        "median": 100.0,
        "min": 90.0,
        "max": 110.0,
        "phases": 3,
    }


def test_added_cost_is_the_share_of_the_rate_lost_with_the_filter_on() -> None:
    result = added_cost([100.0, 120.0, 110.0], [85.0, 90.0, 88.0])
    assert result["ratio_on_off"] == pytest.approx(88.0 / 110.0)
    assert result["added_cost_pct"] == pytest.approx(20.0)
    assert result["meets_target"]
    assert result["per_round_ratio"] == pytest.approx([0.85, 0.75, 0.8])


def test_a_cost_above_twenty_percent_misses_the_target() -> None:
    result = added_cost([100.0], [79.0])
    assert result["added_cost_pct"] == pytest.approx(21.0)
    assert not result["meets_target"]


def test_a_faster_on_configuration_is_a_negative_cost() -> None:
    assert added_cost([100.0], [105.0])["added_cost_pct"] == pytest.approx(-5.0)


def test_cpu_is_grouped_by_tier() -> None:
    cpu = {
        "edge-0": 0.3,
        "edge-1": 0.2,
        "counter-0": 0.1,
        "counter-1": 0.1,
        "redis-bench-edge-0": 0.05,
        "redis-bench-edge-1": 0.05,
        "spam": 0.4,
        "cassandra": 0.5,
        "machine": 1.9,
    }
    assert tier_cores(cpu) == pytest.approx(
        {
            "edges": 0.5,
            "counters": 0.2,
            "redis": 0.1,
            "spam": 0.4,
            "cassandra": 0.5,
            "machine": 1.9,
        }
    )


def test_mean_by_key_averages_over_the_rows_that_have_the_key() -> None:
    assert mean_by_key([{"a": 1.0, "b": 2.0}, {"a": 3.0}]) == {"a": 2.0, "b": 2.0}


def test_rounds_alternate_which_configuration_goes_first() -> None:
    assert round_order(3) == [
        (1, "off"),
        (1, "on"),
        (2, "on"),
        (2, "off"),
        (3, "off"),
        (3, "on"),
    ]


def test_summary_pairs_each_round_and_averages_cpu_per_configuration() -> None:
    phases = [
        phase("off", 1, 100.0, {"edge-0": 0.4, "machine": 2.0}),
        phase("on", 1, 80.0, {"edge-0": 0.6, "spam": 0.5, "machine": 2.0}),
        phase("on", 2, 90.0, {"edge-0": 0.6, "spam": 0.3, "machine": 2.0}),
        phase("off", 2, 120.0, {"edge-0": 0.4, "machine": 2.0}),
    ]
    summary = summarize(phases)
    assert summary["comparison"]["per_round_ratio"] == pytest.approx([0.8, 0.75])
    on = summary["configs"]["on"]
    assert on["events_per_s"]["median"] == pytest.approx(85.0)
    assert on["backlog_change"]["median"] == 0
    assert on["tier_cores"]["spam"] == pytest.approx(0.4)
    assert on["spam_share_of_machine_cpu"] == pytest.approx(0.2)
    assert on["edge_cpu_us_per_acked_event"] == pytest.approx(0.6 / 127.5 * 1e6)
    assert on["metrics"]["edge_events_accepted_total"] == pytest.approx(170.0)
    assert on["all_exact"]


def test_only_removed_views_of_the_same_reel_explain_a_count_mismatch() -> None:
    mismatches = [(7, 100, 100, 90), (8, 50, 50, 40)]
    assert unexplained(mismatches, {7: 10, 8: 0}) == 1
    assert unexplained(mismatches, {7: 10, 8: 10}) == 0
    assert unexplained(mismatches, {7: 11, 8: 10}) == 1


def test_households_share_an_ip_hash_and_none_is_zero() -> None:
    users = np.arange(1, 33, dtype=np.int64)
    hashes = ip_hashes_of(users, 8)
    assert len(set(hashes.tolist())) == 4
    assert (hashes[:8] == hashes[0]).all()
    assert (hashes != 0).all()
    assert (hashes > 0).all()


def test_ip_hashes_are_added_without_changing_what_the_pool_counts() -> None:
    view = common_pb2.EVENT_KIND_VIEW
    batch = common_pb2.EventBatch(reel_ids=[1, 2, 3], user_ids=[5, 5, 9], kinds=[view] * 3)
    pool = BatchPool(
        "p",
        [batch.SerializeToString()],
        np.array([3]),
        np.array([1]),
        np.zeros((1, 1), dtype=np.int64),
        [np.zeros(0, dtype=np.int64)],
    )
    with_ips, per_user = with_ip_hashes(pool, 4)
    sent = common_pb2.EventBatch.FromString(with_ips.payloads[0])
    assert list(sent.user_ids) == [5, 5, 9]
    assert len(sent.ip_hashes) == 3
    assert sent.ip_hashes[0] == sent.ip_hashes[1] != sent.ip_hashes[2]
    assert per_user[5] == 2
    assert per_user[9] == 1
    assert (with_ips.accepted == pool.accepted).all()


def test_pacing_compares_the_busiest_user_with_the_bucket() -> None:
    per_user = np.array([0, 2, 1, 1], dtype=np.int64)  # 4 events, busiest user 2
    pacing = user_pacing(per_user, events_per_s=2.0, phase_s=10.0, limits=EdgeConfig())
    assert pacing["users_in_pool"] == 3
    assert pacing["mean_user_events_per_s"] == pytest.approx(4 / 3 * 2 / 4)
    assert pacing["busiest_user_events_per_s"] == pytest.approx(1.0)
    assert pacing["busiest_user_events_in_phase"] == pytest.approx(2 * 5)  # 5 pool cycles
    assert pacing["bucket_allows_in_phase"] == pytest.approx(120 + 5 * 10)


def test_settings_come_from_the_environment_and_are_checked() -> None:
    settings = SpamCostSettings.from_env(
        {"BENCH_SPAM_COST_SECONDS": "5", "BENCH_SPAM_COST_ROUNDS": "1"}
    )
    assert (settings.seconds, settings.rounds, settings.users) == (5.0, 1, 1_000_000)
    with pytest.raises(ValueError, match="ROUNDS"):
        SpamCostSettings.from_env({"BENCH_SPAM_COST_ROUNDS": "0"})


def test_the_default_bench_stack_neither_screens_nor_forwards() -> None:
    specs = bench_specs(2, 2)
    assert {s.module for s in specs} == {"counter", "edge"}
    for edge in (s for s in specs if s.module == "edge"):
        assert edge.env["REELSTREAM_EDGE_SPAM_SCREEN_ENABLED"] == "false"
        assert edge.env["REELSTREAM_EDGE_SPAM_ADDRESS"] == ""


def test_with_the_spam_filter_edges_screen_and_forward_to_the_stacks_spam_service() -> None:
    specs = bench_specs(2, 2, keyspace="ks", cassandra_hosts="127.0.0.9", spam_filter=True)
    (spam,) = [s for s in specs if s.module == "spam"]
    assert spam.env["REELSTREAM_SPAM_KEYSPACE"] == "ks"
    assert spam.env["REELSTREAM_SPAM_CASSANDRA_HOSTS"] == "127.0.0.9"
    assert spam.env["REELSTREAM_SPAM_ORIGIN_ADDRESS"] == ""
    for edge in (s for s in specs if s.module == "edge"):
        assert edge.env["REELSTREAM_EDGE_SPAM_SCREEN_ENABLED"] == "true"
        assert edge.env["REELSTREAM_EDGE_SPAM_ADDRESS"] == spam.address
