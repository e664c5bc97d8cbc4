"""Exactness under faults: kill -9 of an edge, a counter shard, an edge's Redis and Cassandra
while load runs. Afterwards every acknowledged event is counted exactly once.

The tests kill their own Cassandra node (127.0.0.8, `FAULT_CASSANDRA`), never the development
node other tests and services use at the same time.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from cassandra import ConsistencyLevel
from cassandra.cluster import Cluster
from cassandra.query import SimpleStatement

from reelstream.infra import redis_server
from reelstream.infra.dedicated_cassandra import DedicatedCassandra, DedicatedCassandraCluster
from tests.integration.conftest import (
    FAILED_KEY,
    ServiceProcess,
    ShardMapUnavailable,
    counter_env,
    counts_from_shards,
    edge_env,
    free_port,
    wait_serving,
)
from tests.integration.load_driver import LoadDriver

pytestmark = pytest.mark.timeout(600)

FAULT_CASSANDRA = DedicatedCassandra(
    index=8, address="127.0.0.8", folder="fault-cassandra", cluster_name="reelstream-faults"
)


# Keyspaces of failed fault tests: their node's data is kept for inspection.
_KEPT_KEYSPACES: list[str] = []


@pytest.fixture(scope="module")
def fault_cassandra() -> Iterator[DedicatedCassandra]:
    """The fault tests' own node, from empty data; stopped and wiped afterwards unless a
    test failed."""
    FAULT_CASSANDRA.up()
    yield FAULT_CASSANDRA
    FAULT_CASSANDRA.down(keep_data=bool(_KEPT_KEYSPACES))


@pytest.fixture
def fault_keyspace(request: pytest.FixtureRequest) -> Iterator[str]:
    name = f"faults_{uuid.uuid4().hex[:12]}"
    yield name
    if request.node.stash.get(FAILED_KEY, False):
        _KEPT_KEYSPACES.append(name)
        print(f"keeping {FAULT_CASSANDRA.folder} with keyspace {name} for inspection")


@dataclass
class CountingStack:
    """Two edges (each with its Redis) and two counter shards, as real processes."""

    edges: list[ServiceProcess]
    counters: list[str]
    counter_procs: list[ServiceProcess]
    redis_names: list[str]


def start_counting_stack(
    keyspace: str,
    tmp_path: Path,
    start_service: Callable[..., ServiceProcess],
    cassandra_env: dict[str, str],
) -> CountingStack:
    """Starts the stack; `cassandra_env` points the shards at their Cassandra (hosts,
    replication, consistency: the settings of `CassandraConfigFields`)."""
    redis_ports = [free_port(), free_port()]
    redis_names = [f"fault-{keyspace}-{i}" for i in range(2)]
    for name, port in zip(redis_names, redis_ports, strict=True):
        redis_server.up(name, port, base_dir=tmp_path)
    counters = [f"127.0.0.1:{free_port()}" for _ in range(2)]
    counter_procs = []
    for shard, address in enumerate(counters):
        env = counter_env(keyspace, shard, 2, address)
        env.update(cassandra_env)
        env["REELSTREAM_COUNTER_LEASE_TTL_S"] = "3"
        env["REELSTREAM_COUNTER_LEASE_RENEW_S"] = "1"
        counter_procs.append(start_service("counter", f"counter-{shard}", env, address))
    edges = []
    for i in range(2):
        address = f"127.0.0.1:{free_port()}"
        env = edge_env(keyspace, f"edge-{i}", address, redis_ports[i], counters)
        edges.append(start_service("edge", f"edge-{i}", env, address))
    return CountingStack(edges, counters, counter_procs, redis_names)


def run_load_with_faults(
    keyspace: str,
    tmp_path: Path,
    start_service: Callable[..., ServiceProcess],
    fault_rounds: int,
) -> None:
    stack = start_counting_stack(
        keyspace,
        tmp_path,
        start_service,
        {"REELSTREAM_COUNTER_CASSANDRA_HOSTS": FAULT_CASSANDRA.address},
    )
    load = LoadDriver([edge.address for edge in stack.edges], max_seconds=400)
    load.start()
    try:
        run_fault_rounds(
            load,
            stack.edges,
            stack.counter_procs,
            stack.redis_names,
            tmp_path,
            start_service,
            fault_rounds,
        )
        check_counts_exact(
            load, keyspace, stack.counters, stack.edges, stack.counter_procs, stored_on_fault_node
        )
    finally:
        load.stop()
        for name in stack.redis_names:
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
            FAULT_CASSANDRA.kill()
            time.sleep(1)
            FAULT_CASSANDRA.restart()
            time.sleep(3)
    finally:
        load.stop()


def check_counts_exact(
    load: LoadDriver,
    keyspace: str,
    counters: list[str],
    edges: list[ServiceProcess],
    counter_procs: list[ServiceProcess],
    stored: Callable[[str, list[int]], dict[int, int]],
) -> None:
    """Every acknowledged reel exact at the shards and in Cassandra; `stored` reads the
    totals rolled up into Cassandra."""
    ledger = load.ledger
    assert len(ledger.acknowledged) > 50, "the load made too little progress to judge"
    # Invariants the services check themselves and log when broken.
    for service, alarm in [
        *((counter, "committed batches missing") for counter in counter_procs),
        *((edge, "sequence reuse") for edge in edges),
    ]:
        lines = [line for line in service.log_path.read_text().splitlines() if alarm in line]
        assert not lines, f"{service.name} logged {alarm!r}: {lines[:3]}"
    every_reel = sorted({*ledger.acknowledged, *ledger.failed})
    # The backlog built up during the faults drains at whatever pace the (shared) machine
    # allows: wait while the number of wrong reels keeps falling, fail once it stalls.
    stall_deadline = time.monotonic() + 60
    fewest_wrong = len(every_reel) + 1
    while True:
        counts = counts_from_shards(counters, every_reel)
        lost_or_doubled = {
            reel: (views, counts.get(reel))
            for reel, views in ledger.acknowledged.items()
            if counts.get(reel) != views
        }
        if not lost_or_doubled:
            break
        if len(lost_or_doubled) < fewest_wrong:
            fewest_wrong = len(lost_or_doubled)
            stall_deadline = time.monotonic() + 60
        assert time.monotonic() < stall_deadline, (
            f"{len(lost_or_doubled)} of {len(ledger.acknowledged)} acknowledged reels wrong"
            f" and no progress for 60 s, e.g. (expected, got):"
            f" {dict(list(lost_or_doubled.items())[:10])}"
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
    # What is durable must match too: the totals rolled up into Cassandra. Roll-ups are
    # paced and restart after every fault, so they lag: wait while they make progress.
    expected = {reel: counts[reel] for reel in every_reel}
    stall_deadline = time.monotonic() + 60
    fewest_wrong = len(expected) + 1
    while (stored_now := stored(keyspace, every_reel)) != expected:
        wrong = {r: (v, stored_now.get(r)) for r, v in expected.items() if stored_now.get(r) != v}
        if len(wrong) < fewest_wrong:
            fewest_wrong = len(wrong)
            stall_deadline = time.monotonic() + 60
        assert time.monotonic() < stall_deadline, (
            f"Cassandra totals of {len(wrong)} reels differ and no progress for 60 s:"
            f" {list(wrong.items())[:10]}"
        )
        time.sleep(1)


def stored_views(
    hosts: list[str], keyspace: str, reel_ids: list[int], consistency: int = ConsistencyLevel.ONE
) -> dict[int, int]:
    """Views rolled up into Cassandra for `reel_ids` (0 for reels without a row), read in
    one paged scan of the static rows: the fault nodes hold only this test's data."""
    cluster = Cluster(hosts, protocol_version=5)
    try:
        session = cluster.connect()
        query = SimpleStatement(
            f"SELECT reel_id, views FROM {keyspace}.reel_state PER PARTITION LIMIT 1",
            fetch_size=5000,
            consistency_level=consistency,
        )
        rows = session.execute(query, timeout=60)
        stored = {row.reel_id: row.views or 0 for row in rows}
        return {reel_id: stored.get(reel_id, 0) for reel_id in reel_ids}
    finally:
        cluster.shutdown()


def stored_on_fault_node(keyspace: str, reel_ids: list[int]) -> dict[int, int]:
    return stored_views([FAULT_CASSANDRA.address], keyspace, reel_ids)


def test_cassandra_keeps_every_acknowledged_write_through_kill_9(
    fault_cassandra: DedicatedCassandra,
) -> None:
    """The counter's protocol needs acknowledged batch rows and LWTs to be durable. With
    Cassandra's default periodic commitlog sync a kill -9 lost some of them (the replay stops
    at the last sync marker): the launcher configures group sync (a write is acknowledged
    after the fsync covering it, as with batch sync), and this pins it."""
    cluster = Cluster([fault_cassandra.address], protocol_version=5)
    session = cluster.connect()
    keyspace = f"durability_{uuid.uuid4().hex[:8]}"
    session.execute(
        f"CREATE KEYSPACE {keyspace} WITH replication ="
        " {'class': 'SimpleStrategy', 'replication_factor': 1}"
    )
    session.execute(f"CREATE TABLE {keyspace}.acked (k int PRIMARY KEY)")
    insert = session.prepare(f"INSERT INTO {keyspace}.acked (k) VALUES (?)")
    for key in range(2000):
        session.execute(insert, (key,))
    cluster.shutdown()
    fault_cassandra.kill()
    fault_cassandra.restart()
    cluster = Cluster([fault_cassandra.address], protocol_version=5)
    try:
        stored = cluster.connect().execute(f"SELECT count(*) FROM {keyspace}.acked").one()[0]
    finally:
        cluster.shutdown()
    assert stored == 2000


@pytest.mark.usefixtures("fault_cassandra")
def test_counts_stay_exact_through_kill_9_of_every_process(
    fault_keyspace: str, tmp_path: Path, start_service: Callable[..., ServiceProcess]
) -> None:
    run_load_with_faults(fault_keyspace, tmp_path, start_service, fault_rounds=1)


@pytest.mark.slow
@pytest.mark.timeout(1200)
@pytest.mark.usefixtures("fault_cassandra")
def test_counts_stay_exact_through_repeated_fault_rounds(
    fault_keyspace: str, tmp_path: Path, start_service: Callable[..., ServiceProcess]
) -> None:
    run_load_with_faults(fault_keyspace, tmp_path, start_service, fault_rounds=5)


# --- A 3-node cluster, replication factor 3, QUORUM: one node killed and restarted under load.
QUORUM_CLUSTER = DedicatedCassandraCluster(
    first_index=11,
    nodes=3,
    folder="fault-cassandra-cluster",
    cluster_name="reelstream-quorum",
)
QUORUM_SETTINGS = {
    "REELSTREAM_COUNTER_CASSANDRA_HOSTS": ",".join(QUORUM_CLUSTER.addresses),
    "REELSTREAM_COUNTER_REPLICATION": "SimpleStrategy:3",
    "REELSTREAM_COUNTER_CONSISTENCY": "QUORUM",
}


@pytest.fixture(scope="module")
def quorum_cluster() -> Iterator[DedicatedCassandraCluster]:
    """Three nodes on 127.0.0.11-13 (never the development node on 127.0.0.1), from empty
    data; stopped and wiped afterwards unless a test failed."""
    QUORUM_CLUSTER.up()
    yield QUORUM_CLUSTER
    QUORUM_CLUSTER.down(keep_data=bool(_KEPT_KEYSPACES))


def stored_on_quorum(keyspace: str, reel_ids: list[int]) -> dict[int, int]:
    return stored_views(list(QUORUM_CLUSTER.addresses), keyspace, reel_ids, ConsistencyLevel.QUORUM)


def assert_no_error_lines(services: list[ServiceProcess]) -> None:
    """Faults must show up as warnings (retries, reconnects); an ERROR line means something
    broke, e.g. an outcome or a task no one awaited."""
    for service in services:
        lines = service.log_path.read_text(errors="replace").splitlines()
        errors = [line[:300] for line in lines if "level=error" in line]
        assert not errors, f"{service.name} logged errors: {errors[:3]}"


def exact_at_shards(load: LoadDriver, counters: list[str]) -> int:
    """How many acknowledged reels the shards already count exactly."""
    with load.ledger.lock:
        acknowledged = dict(load.ledger.acknowledged)
    counts = counts_from_shards(counters, list(acknowledged))
    return sum(counts.get(reel) == views for reel, views in acknowledged.items())


def exact_at_shards_by(load: LoadDriver, counters: list[str], deadline: float) -> int:
    """`exact_at_shards`, asked again until `deadline` while no counter answers for the shard
    map: right after a node dies, the counters' reads of it (QUORUM) can time out until the
    other nodes convict the dead one (seen when the seed was killed in session 11)."""
    while True:
        try:
            return exact_at_shards(load, counters)
        except ShardMapUnavailable:
            if time.monotonic() >= deadline:
                raise
            time.sleep(1)


@pytest.mark.slow
@pytest.mark.timeout(1200)
def test_counts_stay_exact_when_each_node_of_a_quorum_cluster_is_killed_and_restarted(
    quorum_cluster: DedicatedCassandraCluster,
    fault_keyspace: str,
    tmp_path: Path,
    start_service: Callable[..., ServiceProcess],
) -> None:
    """RF 3 and QUORUM: with one node down, reads, writes and lease LWTs still find a
    majority, so the load goes on; the restarted node catches up (hints, repair-on-read)
    with no manual step, and every acknowledged event is counted exactly once."""
    stack = start_counting_stack(fault_keyspace, tmp_path, start_service, QUORUM_SETTINGS)
    load = LoadDriver([edge.address for edge in stack.edges], max_seconds=600)
    load.start()
    try:
        for node in (1, 2, 0):  # the two non-seeds, then the seed
            time.sleep(3)
            quorum_cluster.kill(node)
            # Shards apply batches (a QUORUM write each) with the node down: the count of
            # acknowledged reels already exact at the shards must grow.
            deadline = time.monotonic() + 30  # the others first convict the dead node
            before = exact_at_shards_by(load, stack.counters, deadline)
            while exact_at_shards_by(load, stack.counters, deadline) <= before:
                assert time.monotonic() < deadline, f"no batch applied without node {node}"
                time.sleep(1)
            quorum_cluster.restart(node)
        time.sleep(3)
        load.stop()
        print(
            f"quorum cluster: {len(load.ledger.acknowledged)} calls acknowledged,"
            f" {len(load.ledger.failed)} failed"
        )
        check_counts_exact(
            load, fault_keyspace, stack.counters, stack.edges, stack.counter_procs, stored_on_quorum
        )
        assert_no_error_lines([*stack.edges, *stack.counter_procs])
    finally:
        load.stop()
        for name in stack.redis_names:
            redis_server.down(name, base_dir=tmp_path)
