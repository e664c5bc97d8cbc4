"""A counter shard applies each batch once, refuses gaps, and a superseded owner cannot write."""

from __future__ import annotations

import asyncio
import dataclasses
from collections.abc import AsyncIterator, Callable

import grpc
import pytest
from prometheus_client import REGISTRY

from counter.config import CounterConfig
from counter.errors import NotOwner, RingMismatch
from counter.shard_owner import CounterShard
from counter.shard_state import ReelNotLoaded
from counter.store import CounterStore, ReelRollup, now_ms
from protos import common_pb2, counter_pb2, counter_pb2_grpc
from reelstream.cassandra_client import CassandraClient, CassandraSettings, StoreUnavailable
from reelstream.schema import apply_schema
from tests.integration.conftest import ServiceProcess, counter_env, free_port


def views_batch(
    edge_id: str, seq: int, reel_views: dict[int, int]
) -> counter_pb2.ApplyBatchRequest:
    return counter_pb2.ApplyBatchRequest(
        batch_id=counter_pb2.BatchId(edge_id=edge_id, shard=0, seq=seq),
        view_reel_ids=list(reel_views),
        view_minutes=[29_000_000] * len(reel_views),
        view_counts=list(reel_views.values()),
    )


def test_duplicate_batch_is_applied_once_and_gaps_are_refused(
    keyspace: str, start_service: Callable[..., ServiceProcess]
) -> None:
    address = f"127.0.0.1:{free_port()}"
    start_service("counter", "counter-0", counter_env(keyspace, 0, 1, address), address)
    with grpc.insecure_channel(address) as channel:
        counter = counter_pb2_grpc.CounterServiceStub(channel)
        first = counter.ApplyBatch(views_batch("edge-a.1", 1, {7: 5}), timeout=10)
        again = counter.ApplyBatch(views_batch("edge-a.1", 1, {7: 5}), timeout=10)
        assert (first.duplicate, again.duplicate) == (False, True)
        with pytest.raises(grpc.RpcError) as gap:
            counter.ApplyBatch(views_batch("edge-a.1", 3, {7: 1}), timeout=10)
        assert gap.value.code() == grpc.StatusCode.FAILED_PRECONDITION
        assert "expected seq 2" in (gap.value.details() or "")
        batch = views_batch("edge-a.1", 2, {7: 1})
        batch.batch_id.shard = 1
        with pytest.raises(grpc.RpcError) as wrong_shard:
            counter.ApplyBatch(batch, timeout=10)
        assert wrong_shard.value.code() == grpc.StatusCode.FAILED_PRECONDITION
        counts = counter.GetCounts(
            common_pb2.GetCountsRequest(reel_ids=[7], edge_id="edge-a.1"), timeout=10
        )
        assert counts.counts[0].views == 5
        assert counts.edge_applied_seq == 1


def add_like(
    batch: counter_pb2.ApplyBatchRequest, reel_id: int, user_id: int, ts_ms: int, liked: bool
) -> None:
    batch.like_reel_ids.append(reel_id)
    batch.like_user_ids.append(user_id)
    batch.like_ts_ms.append(ts_ms)
    batch.like_values.append(liked)


@pytest.fixture
async def client(keyspace: str) -> AsyncIterator[CassandraClient]:
    cassandra = CassandraClient(CassandraSettings(("127.0.0.1",), 9042, keyspace))
    await cassandra.connect(max_wait_s=60)
    await apply_schema(cassandra)
    yield cassandra
    await cassandra.close()


async def new_owner(
    client: CassandraClient, name: str, max_reels_in_memory: int = 0, **pacing: float
) -> CounterShard:
    config = CounterConfig(
        shard_count=1,
        owner_id=name,
        lease_ttl_s=1.5,
        lease_renew_s=0.5,
        lease_wait_s=30,
        max_reels_in_memory=max_reels_in_memory,
    )
    config = dataclasses.replace(config, **pacing)
    store = CounterStore(client, shard=0)
    await store.prepare()
    shard = CounterShard(config, store)
    await shard.acquire()
    return shard


async def test_a_superseded_owner_cannot_commit_and_the_new_owner_sees_only_committed(
    client: CassandraClient,
) -> None:
    old = await new_owner(client, "old")
    committer = asyncio.create_task(old.run_committer())
    await old.apply(views_batch("edge-a.1", 1, {1: 10}))

    # The old owner stops renewing (a long GC pause, say); its lease expires and a new
    # owner takes the shard with a higher epoch.
    new = await new_owner(client, "new")
    assert new.lease is not None
    assert old.lease is not None
    assert new.lease.epoch == old.lease.epoch + 1
    await new.ensure_loaded([1])
    assert new.state.counts([1])[0].views == 10

    # The old owner still believes it owns the shard (its clock says the lease is valid
    # once we pretend so); its commit must fail on the epoch, not on its own clock.
    old.lease = type(old.lease)(old.lease.shard, old.lease.owner, old.lease.epoch, 2**62)
    with pytest.raises(NotOwner):
        await old.apply(views_batch("edge-a.1", 2, {1: 99}))
    assert old.fenced.is_set()

    new_committer = asyncio.create_task(new.run_committer())
    response = await new.apply(views_batch("edge-a.1", 2, {1: 1}))
    assert response.epoch == new.lease.epoch
    assert new.state.counts([1])[0].views == 11
    for task in (committer, new_committer):
        task.cancel()
    await asyncio.gather(committer, new_committer, return_exceptions=True)


async def test_recovery_replays_committed_batches_after_the_last_snapshot(
    client: CassandraClient,
) -> None:
    first = await new_owner(client, "first")
    committer = asyncio.create_task(first.run_committer())
    await first.apply(views_batch("edge-a.1", 1, {1: 10, 2: 20}))
    await first.snapshot()
    await first.apply(views_batch("edge-a.1", 2, {1: 1, 3: 3}))
    likes = views_batch("edge-b.1", 1, {})
    likes.like_reel_ids.extend([2, 2])
    likes.like_user_ids.extend([100, 101])
    likes.like_ts_ms.extend([5, 5])
    likes.like_values.extend([True, True])
    await first.apply(likes)
    committer.cancel()
    await asyncio.gather(committer, return_exceptions=True)
    # Crash: no final snapshot, no lease release. The next owner waits out the lease.
    second = await new_owner(client, "second")
    await second.ensure_loaded([1, 2, 3])
    counts = {c.reel_id: (c.views, c.likes) for c in second.state.counts([1, 2, 3])}
    assert counts == {1: (11, 0), 2: (20, 2), 3: (3, 0)}
    assert second.applied_seq == {"edge-a.1": 2, "edge-b.1": 1}
    assert second.state.liked(101, [2]) == [True]


def rollup_reels_paced(rate: str) -> float:
    value = REGISTRY.get_sample_value("counter_rollup_reels_paced_total", {"rate": rate})
    return value or 0.0


async def test_roll_ups_yield_while_a_batch_waits_for_its_commit(
    client: CassandraClient,
) -> None:
    shard = await new_owner(
        client,
        "yielding",
        snapshot_max_reels_per_s=100_000.0,
        snapshot_busy_reels_per_s=1_000.0,
        snapshot_yield_after_s=0.2,
    )
    committer = asyncio.create_task(shard.run_committer())
    await shard.apply(views_batch("edge-y.1", 1, {1: 1, 2: 2, 3: 3}))
    assert shard.commit_wait_s() == 0.0
    normal, busy = rollup_reels_paced("normal"), rollup_reels_paced("busy")
    await shard.snapshot()  # nothing waits for a commit: the normal rate
    assert (rollup_reels_paced("normal") - normal, rollup_reels_paced("busy") - busy) == (3, 0)
    await shard.apply(views_batch("edge-y.1", 2, {4: 4, 5: 5}))

    # The committer stalls (as behind a slow Cassandra): the next batch waits for it.
    committer.cancel()
    await asyncio.gather(committer, return_exceptions=True)
    waiting = asyncio.create_task(shard.apply(views_batch("edge-y.1", 3, {6: 6})))
    for _ in range(100):
        if shard.commit_wait_s() > 0.2:
            break
        await asyncio.sleep(0.05)
    normal, busy = rollup_reels_paced("normal"), rollup_reels_paced("busy")
    await shard.snapshot()  # reels 4 and 5 while batch 3 waits: the busy rate
    assert (rollup_reels_paced("normal") - normal, rollup_reels_paced("busy") - busy) == (0, 2)

    committer = asyncio.create_task(shard.run_committer())
    await waiting
    assert shard.commit_wait_s() == 0.0
    assert shard.state.counts([6])[0].views == 6
    committer.cancel()
    await asyncio.gather(committer, return_exceptions=True)


async def test_a_snapshot_interrupted_halfway_loses_and_doubles_nothing(
    client: CassandraClient,
) -> None:
    first = await new_owner(client, "first")
    committer = asyncio.create_task(first.run_committer())
    await first.apply(views_batch("edge-a.1", 1, {1: 10, 2: 20}))
    await first.snapshot()  # snapshot 1 complete: reels 1, 2
    await first.apply(views_batch("edge-a.1", 2, {1: 1, 2: 2, 3: 3}))
    # Snapshot 2 begins and writes only reel 1 before the owner dies.
    job = first._cut_job()
    assert job is not None
    assert first.lease is not None
    await first._store.begin_snapshot(first.lease, job.snapshot_id, job.seqs)
    first._job = job  # as snapshot() would
    first._copy_reels([1])
    [reel_1] = job.next_rollups(1)
    if reel_1.new_reel:
        await first._store.index_reels([1])
    await first._store.write_reels(job.snapshot_id, [reel_1])
    await first.apply(views_batch("edge-a.1", 3, {1: 100, 3: 300}))
    committer.cancel()
    await asyncio.gather(committer, return_exceptions=True)

    expected = {1: 111, 2: 22, 3: 303}
    second = await new_owner(client, "second")
    # Nothing read yet; batches 2 and 3 wait as changes of the stored reels (batch 2 is
    # in the unfinished snapshot's row of reel 1 already). Reel 3 has no row yet.
    assert second.state.unloaded == {1, 2}
    assert set(second.state.partial) == {1, 2}
    assert set(second.state.reels) == {3}
    await second.ensure_loaded([1, 2, 3])
    assert {c.reel_id: c.views for c in second.state.counts([1, 2, 3])} == expected
    await second.snapshot()  # rewrites the reels of the unfinished snapshot
    third = await new_owner(client, "third")
    await third.ensure_loaded([1, 2, 3])
    assert {c.reel_id: c.views for c in third.state.counts([1, 2, 3])} == expected
    row = await third._store.read_lease()
    assert list(row.snapshots) == [row.snapshot_id]


async def test_a_failed_snapshot_resumes_at_its_first_unacknowledged_chunk(
    client: CassandraClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A reel per request: chunks of 256 reels, so 600 reels take three.
    first = await new_owner(client, "first", snapshot_reels_per_write=1)
    committer = asyncio.create_task(first.run_committer())
    expected = {reel: reel for reel in range(1, 601)}
    await first.apply(views_batch("edge-a.1", 1, expected))
    writes: list[int] = []
    failures: list[int] = []
    write_reels = first._store.write_reels

    async def fail_once_in_the_second_chunk(snapshot_id: int, rollups: list[ReelRollup]) -> None:
        writes.extend(rollup.reel_id for rollup in rollups)
        if len(writes) == 300 and not failures:
            failures.append(rollups[0].reel_id)
            raise StoreUnavailable("injected: Cassandra went away")
        await write_reels(snapshot_id, rollups)

    monkeypatch.setattr(first._store, "write_reels", fail_once_in_the_second_chunk)
    with pytest.raises(StoreUnavailable):
        await first.snapshot(paced=False)
    job = first._job
    assert job is not None
    # The first chunk was acknowledged: only its ids are kept, not its copies.
    acknowledged = set(job.written)
    assert len(acknowledged) == 256
    assert acknowledged.isdisjoint(job.unwritten_reel_ids())

    writes.clear()
    await first.snapshot(paced=False)  # the retry
    assert first._job is None
    assert set(writes) == set(expected) - acknowledged
    committer.cancel()
    await asyncio.gather(committer, return_exceptions=True)

    second = await new_owner(client, "second")
    await second.ensure_loaded(list(expected))
    assert {c.reel_id: c.views for c in second.state.counts(list(expected))} == expected
    row = await second._store.read_lease()
    assert list(row.snapshots) == [row.snapshot_id]


async def test_a_new_owner_reads_reels_the_replay_does_not_touch_on_first_use(
    client: CassandraClient,
) -> None:
    first = await new_owner(client, "first")
    committer = asyncio.create_task(first.run_committer())
    likes = views_batch("edge-a.1", 1, {1: 10, 2: 20, 3: 30})
    add_like(likes, reel_id=2, user_id=100, ts_ms=5, liked=True)
    await first.apply(likes)
    await first.snapshot()
    await first.apply(views_batch("edge-a.1", 2, {1: 1}))
    committer.cancel()
    await asyncio.gather(committer, return_exceptions=True)

    second = await new_owner(client, "second")
    # Nothing read: the replayed batch 2 waits as a change of reel 1.
    assert second.state.reels == {}
    assert second.state.unloaded == {1, 2, 3}
    assert set(second.state.partial) == {1}
    with pytest.raises(ReelNotLoaded):
        second.state.counts([2])
    committer = asyncio.create_task(second.run_committer())
    # A batch on an unread reel adds to its stored values; the same user's like again
    # changes nothing (its stored register is read first).
    again = views_batch("edge-a.1", 3, {2: 5})
    add_like(again, reel_id=2, user_id=100, ts_ms=6, liked=True)
    await second.apply(again)
    assert second.state.unloaded == {1, 3}
    await second.ensure_loaded([1])
    assert [(c.views, c.likes) for c in second.state.counts([1, 2])] == [(11, 0), (25, 1)]
    assert (await second.stored.time_series(3, "minute", 0, 2**62))[0][1] == 30
    assert second.state.unloaded == set()
    committer.cancel()
    await asyncio.gather(committer, return_exceptions=True)


async def test_old_buckets_leave_memory_and_late_events_add_to_their_stored_values(
    client: CassandraClient,
) -> None:
    minute = now_ms() // 60_000
    old = minute - 120  # older than the default 15 minutes of minute buckets in memory

    def at(seq: int, minutes: list[int]) -> counter_pb2.ApplyBatchRequest:
        batch = views_batch("edge-a.1", seq, {})
        batch.view_reel_ids.extend([1] * len(minutes))
        batch.view_minutes.extend(minutes)
        batch.view_counts.extend([1] * len(minutes))
        return batch

    first = await new_owner(client, "first")
    committer = asyncio.create_task(first.run_committer())
    await first.apply(at(1, [old, minute]))
    await first.snapshot()
    buckets = first.state.buckets.held(first.state.reels[1].slot)
    assert ("minute", old * 60_000) not in buckets
    assert ("minute", minute * 60_000) in buckets
    assert ("hour", old * 60_000 - old * 60_000 % 3_600_000) in buckets
    # Retired buckets are read back from Cassandra.
    expected = [(old * 60_000, 1, 0), (minute * 60_000, 1, 0)]
    assert await first.stored.time_series(1, "minute", 0, 2**62) == expected

    # A late event adds to the stored value instead of replacing it.
    await first.apply(at(2, [old, old]))
    assert await first.stored.time_series(1, "minute", old * 60_000, old * 60_000 + 1) == [
        (old * 60_000, 3, 0)
    ]
    await first.snapshot()
    assert ("minute", old * 60_000) not in first.state.buckets.held(first.state.reels[1].slot)
    assert (await first.stored.time_series(1, "minute", 0, 2**62))[0] == (old * 60_000, 3, 0)

    # Crash after one more late event: recovery restores the bucket before replaying it.
    await first.apply(at(3, [old]))
    committer.cancel()
    await asyncio.gather(committer, return_exceptions=True)
    second = await new_owner(client, "second")
    assert await second.stored.time_series(1, "minute", 0, 2**62) == [
        (old * 60_000, 4, 0),
        (minute * 60_000, 1, 0),
    ]
    assert second.state.counts([1])[0].views == 5


async def test_a_keyspace_keeps_the_shard_count_it_was_first_written_with(
    client: CassandraClient,
) -> None:
    store = CounterStore(client, shard=0)
    await store.prepare()
    await store.check_shard_count(4)
    await store.check_shard_count(4)  # the same count again is fine
    with pytest.raises(RingMismatch, match=r"holds 4 logical shards.*configured with 8"):
        await store.check_shard_count(8)


async def test_cold_reels_leave_memory_and_come_back_with_their_stored_values(
    client: CassandraClient,
) -> None:
    first = await new_owner(client, "first", max_reels_in_memory=2)
    committer = asyncio.create_task(first.run_committer())
    liked = views_batch("edge-a.1", 1, {1: 10, 2: 20, 3: 30})
    add_like(liked, reel_id=2, user_id=100, ts_ms=5, liked=True)
    await first.apply(liked)
    await first.snapshot()  # reels 1-3 clean: their values are in Cassandra
    await first.apply(views_batch("edge-a.1", 2, {4: 4}))
    # Over the limit after that group: the two oldest clean reels left memory.
    assert set(first.state.reels) == {3, 4}
    assert first.state.unloaded == {1, 2}

    # A batch for an evicted reel adds to its stored values; its like register is back
    # too, so the user's older like loses to the later unlike.
    unlike = views_batch("edge-a.1", 3, {2: 5})
    add_like(unlike, reel_id=2, user_id=100, ts_ms=9, liked=False)
    await first.apply(unlike)
    await first.ensure_loaded([1, 2, 3, 4])
    expected = {1: (10, 0), 2: (25, 0), 3: (30, 0), 4: (4, 0)}
    counts = {c.reel_id: (c.views, c.likes) for c in first.state.counts([1, 2, 3, 4])}
    assert counts == expected
    assert first.state.liked(100, [2]) == [False]
    await first.snapshot()
    committer.cancel()
    await asyncio.gather(committer, return_exceptions=True)

    second = await new_owner(client, "second")
    await second.ensure_loaded([1, 2, 3, 4])
    counts = {c.reel_id: (c.views, c.likes) for c in second.state.counts([1, 2, 3, 4])}
    assert counts == expected
    assert second.state.liked(100, [2]) == [False]


async def test_payloads_written_several_per_request_are_each_stored_whole(
    client: CassandraClient,
) -> None:
    store = CounterStore(client, shard=0)
    await store.prepare()
    big = bytes(range(256)) * 1200  # ~300 KB: beyond one request's share, goes alone
    payloads = [
        ("edge-a.1", 1, b"a" * 40_000),
        ("edge-b.1", 1, b"b" * 40_000),
        ("edge-a.1", 2, big),
        ("edge-a.1", 3, b"c"),
        ("edge-b.1", 2, b""),
    ]
    await store.write_batches(payloads)
    for edge_id, last in (("edge-a.1", 3), ("edge-b.1", 2)):
        rows = await store.read_batches(edge_id, 0, last)
        stored = {(edge_id, row.seq): row.payload or b"" for row in rows}
        assert stored == {(e, seq): p for e, seq, p in payloads if e == edge_id}
