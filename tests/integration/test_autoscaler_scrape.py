"""The autoscaler reads a real edge's /metrics page and decides on what it saw."""

from __future__ import annotations

import urllib.request
from collections.abc import Callable

import grpc

from protos import common_pb2, edge_pb2_grpc
from reelstream.autoscaler import AutoscaleController, Replica, StaticDirectory, default_tiers
from reelstream.metrics_scrape import parse_metrics
from tests.integration.conftest import ServiceProcess, counter_env, edge_env, free_port


class StepClock:
    """Rounds 10 s apart without waiting 10 s."""

    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def test_dry_run_scrapes_a_running_edge_and_logs_a_decision(
    keyspace: str, redis_port: int, start_service: Callable[..., ServiceProcess]
) -> None:
    counter_address = f"127.0.0.1:{free_port()}"
    start_service(
        "counter", "counter-as", counter_env(keyspace, 0, 1, counter_address), counter_address
    )
    edge_address = f"127.0.0.1:{free_port()}"
    metrics_port = free_port()
    env = edge_env(keyspace, "edge-as", edge_address, redis_port, [counter_address])
    env["REELSTREAM_EDGE_METRICS_PORT"] = str(metrics_port)
    start_service("edge", "edge-as", env, edge_address)

    url = f"http://127.0.0.1:{metrics_port}/metrics"
    edge_tier, _ = default_tiers(max_edges=4)
    clock = StepClock()
    directory = StaticDirectory({"edge": [Replica("edge-as", url)]})
    controller = AutoscaleController([edge_tier], directory, None, clock=clock)

    (first,) = controller.run_round()
    assert first.readings["journal_depth_events"].values == (0.0,)
    assert first.readings["events_accepted_per_s"].missing == 1  # a rate needs two scrapes

    with grpc.insecure_channel(edge_address) as channel:
        edge = edge_pb2_grpc.EdgeServiceStub(channel)
        batch = common_pb2.EventBatch(
            reel_ids=[7] * 50,
            user_ids=list(range(1, 51)),
            kinds=[common_pb2.EVENT_KIND_VIEW] * 50,
            watch_ms=[5000] * 50,
        )
        assert edge.SendEvents(batch, timeout=10).accepted == 50

    clock.now = 10.0
    (second,) = controller.run_round()
    rate = second.readings["events_accepted_per_s"].values
    assert rate == (5.0,)  # 50 events over the 10 s between the two rounds
    cpu = second.readings["cpu_cores"].values
    assert len(cpu) == 1
    assert cpu[0] >= 0.0
    # Far below every target: the policy wants fewer replicas but the minimum is 1.
    assert second.decision.current == 1
    assert second.decision.desired == 1
    assert second.decision.reason
    assert not second.applied

    # The shell's interceptor counts the call by method and code on the same page.
    page = urllib.request.urlopen(url, timeout=5).read().decode()
    values = parse_metrics(page)
    assert values["grpc_server_handled_total"] >= 1
    assert (
        'grpc_server_handled_total{grpc_code="OK",grpc_method="SendEvents",'
        'grpc_service="reelstream.v1.EdgeService"} 1.0'
    ) in page
