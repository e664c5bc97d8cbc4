"""Start-up without dependencies, and graceful shutdown, of real service processes."""

from __future__ import annotations

import signal
import time
from collections.abc import Callable

import grpc

from protos import common_pb2, counter_pb2_grpc, edge_pb2_grpc
from tests.integration.conftest import (
    ServiceProcess,
    counter_env,
    edge_env,
    free_port,
)


def wait_for_log(service: ServiceProcess, text: str, count: int, timeout_s: float) -> None:
    deadline = time.monotonic() + timeout_s
    while service.log_path.read_text(errors="replace").count(text) < count:
        assert service.process.poll() is None, service.log_tail()
        assert time.monotonic() < deadline, f"no {count}x {text!r} in:\n{service.log_tail()}"
        time.sleep(0.2)


def test_counter_without_cassandra_retries_visibly_and_stops_cleanly(
    keyspace: str, start_unready: Callable[..., ServiceProcess]
) -> None:
    closed_port = free_port()
    address = f"127.0.0.1:{free_port()}"
    env = counter_env(keyspace, 0, 1, address)
    env["REELSTREAM_COUNTER_CASSANDRA_PORT"] = str(closed_port)
    counter = start_unready("counter", "counter-nodb", env, address)

    wait_for_log(counter, "cassandra unreachable, retrying", 2, 30)
    counter.process.send_signal(signal.SIGTERM)

    assert counter.process.wait(timeout=15) == 0
    assert "stopped during start-up" in counter.log_tail()


def test_edge_without_redis_retries_visibly(
    keyspace: str, start_unready: Callable[..., ServiceProcess]
) -> None:
    address = f"127.0.0.1:{free_port()}"
    env = edge_env(keyspace, "edge-noredis", address, free_port(), ["127.0.0.1:1"])
    edge = start_unready("edge", "edge-noredis", env, address)

    wait_for_log(edge, "redis unreachable, retrying", 2, 30)
    edge.process.send_signal(signal.SIGTERM)

    assert edge.process.wait(timeout=15) == 0


def test_sigterm_delivers_the_edge_journal_before_exit(
    redis_port: int, keyspace: str, start_service: Callable[..., ServiceProcess]
) -> None:
    counter_address = f"127.0.0.1:{free_port()}"
    start_service(
        "counter", "counter-0", counter_env(keyspace, 0, 1, counter_address), counter_address
    )
    edge_address = f"127.0.0.1:{free_port()}"
    env = edge_env(keyspace, "edge-drain", edge_address, redis_port, [counter_address])
    # A long flush interval: only the shutdown drain can deliver these events in time.
    env["REELSTREAM_EDGE_FLUSH_INTERVAL_S"] = "1.0"
    edge = start_service("edge", "edge-drain", env, edge_address)

    batch = common_pb2.EventBatch(
        reel_ids=[5] * 300,
        user_ids=list(range(1, 301)),
        kinds=[common_pb2.EVENT_KIND_VIEW] * 300,
        watch_ms=[5000] * 300,
    )
    with grpc.insecure_channel(edge_address) as channel:
        assert edge_pb2_grpc.EdgeServiceStub(channel).SendEvents(batch, timeout=5).accepted == 300
    edge.process.send_signal(signal.SIGTERM)
    assert edge.process.wait(timeout=20) == 0

    with grpc.insecure_channel(counter_address) as channel:
        counts = counter_pb2_grpc.CounterServiceStub(channel).GetCounts(
            common_pb2.GetCountsRequest(reel_ids=[5]), timeout=5
        )
    assert counts.counts[0].views == 300
