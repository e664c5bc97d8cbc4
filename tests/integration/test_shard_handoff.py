"""Rebalancing logical shards between counter processes keeps counts exact.

Adding a counter process and removing one (SIGTERM: it hands its shards off before it
exits) while a bounded load runs: every acknowledged call is counted exactly once, failed
calls are counted wholly or not at all, and an owner that handed a shard off can no longer
commit to it (its epoch is fenced).
"""

from __future__ import annotations

import asyncio
import signal
import time
from collections.abc import AsyncIterator, Callable

import pytest

from counter.config import CounterConfig
from counter.errors import NotOwner
from counter.membership import MemberStore
from counter.shard_host import ShardHost
from counter.store import CounterStore
from protos import counter_pb2
from reelstream.cassandra_client import CassandraClient, CassandraSettings
from reelstream.schema import apply_schema
from tests.integration.conftest import (
    ServiceProcess,
    counter_env,
    counts_from_shards,
    edge_env,
    free_port,
    wait_for_map,
)
from tests.integration.load_driver import LoadDriver

SHARDS = 8


def start_counter(
    start_service: Callable[..., ServiceProcess], keyspace: str, index: int
) -> ServiceProcess:
    address = f"127.0.0.1:{free_port()}"
    env = counter_env(keyspace, index, SHARDS, address)
    return start_service("counter", f"counter-{index}", env, address)


def test_adding_and_removing_a_counter_process_under_load_keeps_counts_exact(
    keyspace: str,
    redis_port: int,
    start_service: Callable[..., ServiceProcess],
) -> None:
    counters = [start_counter(start_service, keyspace, i) for i in range(2)]
    seeds = [c.address for c in counters]
    wait_for_map(seeds, {"counter-0", "counter-1"})
    edges = []
    for i in range(2):
        address = f"127.0.0.1:{free_port()}"
        env = edge_env(keyspace, f"edge-{i}", address, redis_port, seeds, shard_count=SHARDS)
        edges.append(start_service("edge", f"edge-{i}", env, address))
    load = LoadDriver([edge.address for edge in edges], max_seconds=120)
    load.start()
    try:
        time.sleep(2)
        added = start_counter(start_service, keyspace, 2)
        counters.append(added)
        moved_in = wait_for_map(seeds, {"counter-0", "counter-1", "counter-2"})
        assert any(o.member == "counter-2" for o in moved_in.owners)
        time.sleep(2)
        # Removal: SIGTERM makes counter-0 leave; it hands every shard off, then exits.
        counters[0].process.send_signal(signal.SIGTERM)
        assert counters[0].process.wait(timeout=30) == 0
        wait_for_map([c.address for c in counters[1:]], {"counter-1", "counter-2"})
        time.sleep(2)
    finally:
        load.stop()
    live = [c.address for c in counters[1:]]
    ledger = load.ledger
    assert len(ledger.acknowledged) > 50, "the load made too little progress to judge"
    every_reel = sorted({*ledger.acknowledged, *ledger.failed})
    deadline = time.monotonic() + 60
    while True:
        counts = counts_from_shards(live, every_reel)
        wrong = {
            reel: (views, counts.get(reel))
            for reel, views in ledger.acknowledged.items()
            if counts.get(reel) != views
        }
        if not wrong:
            break
        assert time.monotonic() < deadline, (
            f"{len(wrong)} of {len(ledger.acknowledged)} acknowledged reels lost or doubled,"
            f" e.g. (expected, got): {dict(list(wrong.items())[:10])}"
        )
        time.sleep(0.5)
    partial = {r: counts.get(r) for r, v in ledger.failed.items() if counts.get(r) not in (0, v)}
    assert not partial, f"failed calls counted partially or twice: {list(partial.items())[:10]}"
    for service, alarm in [
        *((c, "committed batches missing") for c in counters),
        *((e, "sequence reuse") for e in edges),
    ]:
        lines = [line for line in service.log_path.read_text().splitlines() if alarm in line]
        assert not lines, f"{service.name} logged {alarm!r}: {lines[:3]}"
    handed_off = [
        line for line in counters[0].log_path.read_text().splitlines() if "shard handed off" in line
    ]
    assert handed_off, "counter-0 exited without handing its shards off"


@pytest.fixture
async def client(keyspace: str) -> AsyncIterator[CassandraClient]:
    cassandra = CassandraClient(CassandraSettings(("127.0.0.1",), 9042, keyspace))
    await cassandra.connect(max_wait_s=60)
    await apply_schema(cassandra)
    yield cassandra
    await cassandra.close()


async def start_host(client: CassandraClient, name: str) -> ShardHost:
    config = CounterConfig(
        name=name,
        shard_count=2,
        owner_id=f"{name}-owner",
        lease_ttl_s=3,
        lease_renew_s=1,
        membership_interval_s=0.2,
        snapshot_interval_s=0.5,
    )
    store = CounterStore(client, 0)
    await store.prepare()
    host = ShardHost(config, store, MemberStore(client))
    await host.start()
    return host


async def until(condition: Callable[[], bool], timeout_s: float = 30) -> None:
    deadline = time.monotonic() + timeout_s
    while not condition():
        assert time.monotonic() < deadline, "condition not reached"
        await asyncio.sleep(0.05)


def views_batch(shard: int, seq: int, reel_id: int, views: int) -> counter_pb2.ApplyBatchRequest:
    return counter_pb2.ApplyBatchRequest(
        batch_id=counter_pb2.BatchId(edge_id="edge-h.1", shard=shard, seq=seq),
        view_reel_ids=[reel_id],
        view_minutes=[29_000_000],
        view_counts=[views],
    )


async def test_a_handed_off_shard_moves_with_its_counts_and_fences_the_old_owner(
    client: CassandraClient,
) -> None:
    first = await start_host(client, "counter-a")
    membership = asyncio.create_task(first.run_membership())
    assert set(first.served) == {0, 1}
    reel = next(r for r in range(1, 1000) if first.ring.shard_for(r) == 0)
    for seq in (1, 2):
        await first.shard(0).apply(views_batch(0, seq, reel, 10))
    await first.shard(1).apply(views_batch(1, 1, reel + 1_000_000, 1))
    old = {shard_id: shard for shard_id, shard in first.served.items()}

    second = await start_host(client, "counter-b")
    second_membership = asyncio.create_task(second.run_membership())
    try:
        await until(lambda: len(first.served) == 1 and len(second.served) == 1)
        (moved,) = set(second.served)
        taken = second.shard(moved)
        assert taken.lease is not None
        assert old[moved].lease is not None
        assert taken.lease.epoch > old[moved].lease.epoch
        assert taken.applied_seq == {"edge-h.1": 2 if moved == 0 else 1}
        if moved == 0:
            await taken.ensure_loaded([reel])
            assert taken.state.counts([reel])[0].views == 20
        # The old owner's shard object cannot commit any more, whatever its clock says.
        stale = old[moved]
        stale._closing = False  # as if it had missed the handoff entirely
        stale.lease = type(stale.lease)(moved, stale.lease.owner, stale.lease.epoch, 2**62)
        stale._fenced.clear()
        committer = asyncio.create_task(stale.run_committer())
        with pytest.raises(NotOwner):
            await stale.apply(views_batch(moved, 3 if moved == 0 else 2, reel, 99))
        committer.cancel()
        await asyncio.gather(committer, return_exceptions=True)
        with pytest.raises(NotOwner):
            first.shard(moved)
    finally:
        for task in (membership, second_membership):
            task.cancel()
        await asyncio.gather(membership, second_membership, return_exceptions=True)
        await first.leave()
        await second.leave()
        await first.close()
        await second.close()
