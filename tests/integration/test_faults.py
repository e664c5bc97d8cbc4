"""Exactness under faults: kill -9 of an edge, a counter shard, an edge's Redis and Cassandra
while load runs. Afterwards every acknowledged event is counted exactly once."""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path

import grpc
import pytest
from cassandra.cluster import Cluster
from cassandra.concurrent import execute_concurrent_with_args

from protos import common_pb2, counter_pb2_grpc
from reelstream.infra import cassandra_node, redis_server
from reelstream.ring import ConsistentHashRing
from tests.integration.conftest import (
    ServiceProcess,
    counter_env,
    edge_env,
    free_port,
    wait_serving,
)
from tests.integration.load_driver import LoadDriver

pytestmark = pytest.mark.timeout(600)


def counts_from_shards(counters: list[str], reel_ids: list[int]) -> dict[int, int]:
    ring = ConsistentHashRing.of_size(len(counters))
    by_shard: dict[int, list[int]] = {}
    for reel_id in reel_ids:
        by_shard.setdefault(ring.shard_for(reel_id), []).append(reel_id)
    counts: dict[int, int] = {}
    for shard, ids in by_shard.items():
        with grpc.insecure_channel(counters[shard]) as channel:
            stub = counter_pb2_grpc.CounterServiceStub(channel)
            for start in range(0, len(ids), 1000):
                response = stub.GetCounts(
                    common_pb2.GetCountsRequest(reel_ids=ids[start : start + 1000]), timeout=10
                )
                counts.update((c.reel_id, c.views) for c in response.counts)
    return counts


def run_load_with_faults(
    keyspace: str,
    tmp_path: Path,
    start_service: Callable[..., ServiceProcess],
    fault_rounds: int,
) -> None:
    redis_ports = [free_port(), free_port()]
    redis_names = [f"fault-{keyspace}-{i}" for i in range(2)]
    for name, port in zip(redis_names, redis_ports, strict=True):
        redis_server.up(name, port, base_dir=tmp_path)
    counters = [f"127.0.0.1:{free_port()}" for _ in range(2)]
    counter_procs = []
    for shard, address in enumerate(counters):
        env = counter_env(keyspace, shard, 2, address)
        env["REELSTREAM_COUNTER_LEASE_TTL_S"] = "3"
        env["REELSTREAM_COUNTER_LEASE_RENEW_S"] = "1"
        counter_procs.append(start_service("counter", f"counter-{shard}", env, address))
    edges = []
    for i in range(2):
        address = f"127.0.0.1:{free_port()}"
        env = edge_env(keyspace, f"edge-{i}", address, redis_ports[i], counters)
        edges.append(start_service("edge", f"edge-{i}", env, address))

    load = LoadDriver([edge.address for edge in edges], max_seconds=400)
    load.start()
    try:
        run_fault_rounds(
            load, edges, counter_procs, redis_names, tmp_path, start_service, fault_rounds
        )
        check_counts_exact(load, keyspace, counters, edges, counter_procs)
    finally:
        load.stop()
        for name in redis_names:
            redis_server.down(name, base_dir=tmp_path)


def run_fault_rounds(
    load: LoadDriver,
    edges: list[ServiceProcess],
    counter_procs: list[ServiceProcess],
    redis_names: list[str],
    tmp_path: Path,
    start_service: Callable[..., ServiceProcess],
    fault_rounds: int,
) -> None:
    try:
        for _ in range(fault_rounds):
            time.sleep(2)
            # 1. kill -9 an edge (mid-flush: it flushes every 100 ms) and start it again.
            edges[0].process.kill()
            edges[0].process.wait()
            edges[0] = start_service("edge", edges[0].name, edges[0].env, edges[0].address)
            time.sleep(2)
            # 2. kill -9 a counter shard mid-write; the new process waits out the lease.
            counter_procs[1].process.kill()
            counter_procs[1].process.wait()
            counter_procs[1] = start_service(
                "counter", counter_procs[1].name, counter_procs[1].env, counter_procs[1].address
            )
            time.sleep(2)
            # 3. kill -9 an edge's Redis and restart it from its AOF.
            redis_server.kill(redis_names[1], base_dir=tmp_path)
            time.sleep(1)
            redis_server.restart(redis_names[1], base_dir=tmp_path)
            time.sleep(2)
            # 4. kill -9 Cassandra and restart it.
            cassandra_node.kill_node(1)
            time.sleep(1)
            cassandra_node.restart_node(1)
            time.sleep(3)
    finally:
        load.stop()


def check_counts_exact(
    load: LoadDriver,
    keyspace: str,
    counters: list[str],
    edges: list[ServiceProcess],
    counter_procs: list[ServiceProcess],
) -> None:
    ledger = load.ledger
    assert len(ledger.acknowledged) > 50, "the load made too little progress to judge"
    every_reel = sorted({*ledger.acknowledged, *ledger.failed})
    deadline = time.monotonic() + 90
    while True:
        counts = counts_from_shards(counters, every_reel)
        lost_or_doubled = {
            reel: (views, counts.get(reel))
            for reel, views in ledger.acknowledged.items()
            if counts.get(reel) != views
        }
        if not lost_or_doubled:
            break
        assert time.monotonic() < deadline, (
            f"{len(lost_or_doubled)} of {len(ledger.acknowledged)} acknowledged reels wrong,"
            f" e.g. (expected, got): {dict(list(lost_or_doubled.items())[:10])}"
        )
        time.sleep(0.5)
    partial = {
        reel: counts.get(reel)
        for reel, views in ledger.failed.items()
        if counts.get(reel) not in (0, views)
    }
    assert not partial, (
        f"failed calls counted partially or twice: {dict(list(partial.items())[:10])}"
    )
    for service in [*edges, *counter_procs]:
        wait_serving(service, timeout_s=5)
    # What is durable must match too: the totals rolled up into Cassandra.
    expected = {reel: counts[reel] for reel in every_reel}
    deadline = time.monotonic() + 60
    while (stored := stored_views(keyspace, len(counters), every_reel)) != expected:
        wrong = {r: (v, stored.get(r)) for r, v in expected.items() if stored.get(r) != v}
        assert time.monotonic() < deadline, f"Cassandra totals differ: {list(wrong.items())[:10]}"
        time.sleep(1)


def stored_views(keyspace: str, shard_count: int, reel_ids: list[int]) -> dict[int, int]:
    ring = ConsistentHashRing.of_size(shard_count)
    cluster = Cluster(["127.0.0.1"], protocol_version=5)
    try:
        session = cluster.connect(keyspace)
        query = session.prepare(
            "SELECT views FROM reel_state WHERE shard = ? AND reel_id = ? LIMIT 1"
        )
        results = execute_concurrent_with_args(
            session, query, [(ring.shard_for(r), r) for r in reel_ids], concurrency=64
        )
        stored = {}
        for reel_id, (ok, rows) in zip(reel_ids, results, strict=True):
            row = rows.one() if ok else None
            stored[reel_id] = row.views if row is not None and row.views is not None else 0
        return stored
    finally:
        cluster.shutdown()


def test_counts_stay_exact_through_kill_9_of_every_process(
    keyspace: str, tmp_path: Path, start_service: Callable[..., ServiceProcess]
) -> None:
    run_load_with_faults(keyspace, tmp_path, start_service, fault_rounds=1)


@pytest.mark.slow
def test_counts_stay_exact_through_repeated_fault_rounds(
    keyspace: str, tmp_path: Path, start_service: Callable[..., ServiceProcess]
) -> None:
    run_load_with_faults(keyspace, tmp_path, start_service, fault_rounds=5)
