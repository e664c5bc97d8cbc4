"""The plumbing end to end through real processes: origin, counter shard, edge, against the
real Cassandra and Redis."""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Callable

import grpc
import pytest
from cassandra.cluster import Cluster
from cassandra.query import ValueSequence

from protos import common_pb2, edge_pb2_grpc, origin_pb2, origin_pb2_grpc
from tests.integration.conftest import ServiceProcess, counter_env, edge_env, free_port

REELS = 100
EVENTS = 10_000


def poll(check: Callable[[], bool], timeout_s: float, what: str) -> None:
    deadline = time.monotonic() + timeout_s
    while not check():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.2)


def test_ten_thousand_views_are_counted_exactly_at_the_edge_and_in_cassandra(
    cassandra: str, redis_port: int, keyspace: str, start_service: Callable[..., ServiceProcess]
) -> None:
    origin_address = f"127.0.0.1:{free_port()}"
    start_service(
        "origin",
        "origin",
        {
            "REELSTREAM_ORIGIN_GRPC_ADDRESS": origin_address,
            "REELSTREAM_ORIGIN_METRICS_PORT": "0",
            "REELSTREAM_ORIGIN_KEYSPACE": keyspace,
        },
        origin_address,
    )
    counter_address = f"127.0.0.1:{free_port()}"
    start_service(
        "counter", "counter-0", counter_env(keyspace, 0, 1, counter_address), counter_address
    )
    edge_address = f"127.0.0.1:{free_port()}"
    start_service(
        "edge",
        "edge-0",
        edge_env(keyspace, "edge-0", edge_address, redis_port, [counter_address], origin_address),
        edge_address,
    )
    with grpc.insecure_channel(origin_address) as origin_channel:
        origin = origin_pb2_grpc.OriginServiceStub(origin_channel)
        catalog = [
            origin_pb2.Reel(reel_id=r, state=origin_pb2.REEL_STATE_PUBLISHED, duration_ms=20_000)
            for r in range(1, REELS + 1)
        ]
        assert (
            origin.ImportReels(origin_pb2.ImportReelsRequest(reels=catalog), timeout=30).imported
            == REELS
        )

    now_ms = int(time.time() * 1000)
    expected: Counter[int] = Counter()
    with grpc.insecure_channel(edge_address) as channel:
        edge = edge_pb2_grpc.EdgeServiceStub(channel)
        for start in range(0, EVENTS, 500):
            batch = common_pb2.EventBatch()
            for i in range(start, start + 500):
                reel_id = 1 + i % REELS
                batch.reel_ids.append(reel_id)
                batch.user_ids.append(1_000_000 + i)
                batch.kinds.append(common_pb2.EVENT_KIND_VIEW)
                batch.watch_ms.append(4_000)
                batch.client_ts_ms.append(now_ms)
                expected[reel_id] += 1
            response = edge.SendEvents(batch, timeout=10)
            assert response.accepted == 500, response.rejections[:3]

        # Events of reels the origin does not know are refused one by one.
        stray = common_pb2.EventBatch(
            reel_ids=[1, 999_999],
            user_ids=[5, 5],
            kinds=[common_pb2.EVENT_KIND_LIKE] * 2,
        )
        response = edge.SendEvents(stray, timeout=10)
        assert response.accepted == 1
        assert [(r.index, r.reason) for r in response.rejections] == [
            (1, common_pb2.REJECT_REASON_UNKNOWN_REEL)
        ]

        reel_ids = list(range(1, REELS + 1))
        # Read-your-writes: exact at once, flushed or not.
        counts = edge.GetCounts(common_pb2.GetCountsRequest(reel_ids=reel_ids), timeout=10)
        assert {c.reel_id: c.views for c in counts.counts} == dict(expected)

        with grpc.insecure_channel(origin_address) as origin_channel:
            origin = origin_pb2_grpc.OriginServiceStub(origin_channel)
            with pytest.raises(grpc.RpcError) as missing:
                origin.GetReel(origin_pb2.GetReelRequest(reel_id=999_999), timeout=5)
            assert missing.value.code() == grpc.StatusCode.NOT_FOUND

    cluster = Cluster(["127.0.0.1"], protocol_version=5)
    try:
        session = cluster.connect(keyspace)

        def stored_views() -> dict[int, int]:
            rows = session.execute(
                "SELECT reel_id, views FROM reel_state WHERE shard = 0 AND reel_id IN %s"
                " PER PARTITION LIMIT 1",
                (ValueSequence(range(1, REELS + 1)),),
            )
            return {row.reel_id: row.views for row in rows if row.views is not None}

        poll(lambda: stored_views() == dict(expected), 30, "totals rolled up into Cassandra")
    finally:
        cluster.shutdown()
