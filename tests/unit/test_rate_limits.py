"""Per-caller token buckets (reelstream/rate_limits.py), on a fake clock."""

from __future__ import annotations

import pytest
from google.protobuf import duration_pb2
from google.rpc import error_details_pb2, status_pb2

from reelstream.rate_limits import CallerBuckets, retry_trailers
from tests.unit.fake_clock import FakeClock


def test_a_caller_gets_its_burst_then_waits_for_the_refill() -> None:
    clock = FakeClock()
    buckets = CallerBuckets(rate_per_s=8, burst=5, max_callers=10, clock=clock)
    assert [buckets.retry_after_s("edge") for _ in range(5)] == [0.0] * 5
    assert buckets.retry_after_s("edge") == pytest.approx(0.125)
    clock.now_s += 0.125
    assert buckets.retry_after_s("edge") == 0.0
    assert buckets.retry_after_s("edge") > 0


def test_callers_have_buckets_of_their_own() -> None:
    buckets = CallerBuckets(rate_per_s=1, burst=1, max_callers=10, clock=FakeClock())
    assert buckets.retry_after_s("edge") == 0.0
    assert buckets.retry_after_s("edge") > 0
    assert buckets.retry_after_s("spam") == 0.0


def test_an_idle_bucket_refills_only_up_to_its_burst() -> None:
    clock = FakeClock()
    buckets = CallerBuckets(rate_per_s=100, burst=3, max_callers=10, clock=clock)
    buckets.retry_after_s("app")
    clock.now_s += 3600
    assert [buckets.retry_after_s("app") for _ in range(4)][-1] > 0


def test_the_number_of_remembered_callers_is_bounded() -> None:
    buckets = CallerBuckets(rate_per_s=1, burst=1, max_callers=3, clock=FakeClock())
    for peer in range(10):
        buckets.retry_after_s(f"peer {peer}")
    assert len(buckets) == 3
    # The most recently seen callers are the ones kept: peer 9 is still empty.
    assert buckets.retry_after_s("peer 9") > 0


def test_retry_trailers_carry_retry_info_and_a_plain_delay() -> None:
    trailers = dict(retry_trailers("slow down", 0.25))
    assert trailers["retry-after-ms"] == "250"
    status = status_pb2.Status.FromString(trailers["grpc-status-details-bin"])
    assert status.message == "slow down"
    info = error_details_pb2.RetryInfo()
    assert status.details[0].Unpack(info)
    assert info.retry_delay == duration_pb2.Duration(nanos=250_000_000)
