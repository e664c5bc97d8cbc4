"""The edge journal against a real Redis that fails under it."""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path

import grpc
import pytest

from protos import common_pb2, counter_pb2_grpc, edge_pb2_grpc
from reelstream.infra import redis_server
from tests.integration.conftest import ServiceProcess, counter_env, edge_env, free_port

pytestmark = pytest.mark.timeout(180)


def view_batch(reel_id: int) -> common_pb2.EventBatch:
    return common_pb2.EventBatch(
        reel_ids=[reel_id] * 5,
        user_ids=range(1, 6),
        kinds=[common_pb2.EVENT_KIND_VIEW] * 5,
        watch_ms=[5_000] * 5,
    )


def send_until_accepted(edge: edge_pb2_grpc.EdgeServiceStub, reel_id: int) -> None:
    batch = view_batch(reel_id)
    deadline = time.monotonic() + 30
    while True:
        try:
            if edge.SendEvents(batch, timeout=5).accepted == 5:
                return
        except grpc.RpcError:
            pass  # Redis is coming back: this call was not journaled
        assert time.monotonic() < deadline, f"reel {reel_id}: never accepted"
        time.sleep(0.2)


def wait_counted(counter: counter_pb2_grpc.CounterServiceStub, reel_ids: list[int]) -> None:
    deadline = time.monotonic() + 30
    while True:
        response = counter.GetCounts(common_pb2.GetCountsRequest(reel_ids=reel_ids), timeout=5)
        views = {c.reel_id: c.views for c in response.counts}
        if all(views.get(r) == 5 for r in reel_ids):
            return
        assert time.monotonic() < deadline, f"not counted at the shard: {views}"
        time.sleep(0.2)


def test_an_edge_whose_redis_lost_its_data_starts_a_new_sequence_space(
    keyspace: str, tmp_path: Path, start_service: Callable[..., ServiceProcess]
) -> None:
    """Without a new incarnation the edge would number batches from 1 again and the shard,
    which committed those numbers before, would drop them as duplicates."""
    redis_name, redis_port = "journal-loss", free_port()
    redis_server.up(redis_name, redis_port, base_dir=tmp_path)
    try:
        counter_address, edge_address = (f"127.0.0.1:{free_port()}" for _ in range(2))
        counter = start_service(
            "counter", "counter", counter_env(keyspace, 0, 1, counter_address), counter_address
        )
        env = edge_env(keyspace, "edge", edge_address, redis_port, [counter_address])
        edge = start_service("edge", "edge", env, edge_address)
        with (
            grpc.insecure_channel(edge.address) as edge_channel,
            grpc.insecure_channel(counter.address) as counter_channel,
        ):
            edge_stub = edge_pb2_grpc.EdgeServiceStub(edge_channel)
            counter_stub = counter_pb2_grpc.CounterServiceStub(counter_channel)
            before = list(range(1, 11))
            for reel_id in before:
                send_until_accepted(edge_stub, reel_id)
            wait_counted(counter_stub, before)

            # Redis loses everything while the edge runs; the edge notices on its next call.
            redis_server.wipe(redis_name, base_dir=tmp_path)
            with pytest.raises(grpc.RpcError) as refused:
                edge_stub.SendEvents(view_batch(11), timeout=5)
            assert refused.value.code() == grpc.StatusCode.UNAVAILABLE
            redis_server.up(redis_name, redis_port, base_dir=tmp_path)

            after = list(range(11, 21))
            for reel_id in after:
                send_until_accepted(edge_stub, reel_id)
            wait_counted(counter_stub, after)
        assert "new sequence space" in edge.log_path.read_text()
    finally:
        redis_server.down(redis_name, base_dir=tmp_path)
