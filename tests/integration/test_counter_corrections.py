"""Corrections (spam removals and appeals) and unique viewers, through a real shard process,
surviving a restart of the shard."""

from __future__ import annotations

import asyncio
import signal
from collections.abc import Callable

import grpc
import pytest
from grpc import aio

from protos import common_pb2, counter_pb2, counter_pb2_grpc
from reelstream.correction_router import apply_corrections
from reelstream.ring import ConsistentHashRing
from reelstream.shard_directory import ShardDirectory
from tests.integration.conftest import ServiceProcess, counter_env, free_port, wait_for_map


def reels_of_shard(shard: int, shard_count: int, how_many: int) -> list[int]:
    ring = ConsistentHashRing.of_size(shard_count)
    return [r for r in range(1, 10_000) if ring.shard_for(r) == shard][:how_many]


async def read(stub: counter_pb2_grpc.CounterServiceAsyncStub, reel_id: int) -> tuple[int, ...]:
    counts = await stub.GetCounts(common_pb2.GetCountsRequest(reel_ids=[reel_id]), timeout=5)
    c = counts.counts[0]
    return (c.views, c.views_removed, c.likes, c.likes_removed, c.unique_viewers)


async def test_corrections_apply_once_reverse_exactly_and_survive_a_restart(
    keyspace: str, start_service: Callable[..., ServiceProcess]
) -> None:
    addresses = [f"127.0.0.1:{free_port()}" for _ in range(2)]
    shards = [
        start_service("counter", f"counter-{i}", counter_env(keyspace, i, 2, a), a)
        for i, a in enumerate(addresses)
    ]
    # Each process serves one of the two logical shards; index them by the shard served.
    owners = {
        o.shard: o.address for o in wait_for_map(addresses, {"counter-0", "counter-1"}).owners
    }
    shards = sorted(shards, key=lambda s: 0 if s.address == owners[0] else 1)
    addresses = [s.address for s in shards]
    directory = ShardDirectory(addresses, 2)
    assert await directory.refresh()
    reel = reels_of_shard(0, 2, 1)[0]
    other = reels_of_shard(1, 2, 1)[0]
    async with aio.insecure_channel(addresses[0]) as ch0, aio.insecure_channel(addresses[1]) as ch1:
        stubs = [counter_pb2_grpc.CounterServiceStub(ch0), counter_pb2_grpc.CounterServiceStub(ch1)]
        users = list(range(1, 1_501))  # above the exact limit: the sketch takes over
        await stubs[0].ApplyBatch(
            counter_pb2.ApplyBatchRequest(
                batch_id=counter_pb2.BatchId(edge_id="edge-x.1", shard=0, seq=1),
                view_reel_ids=[reel],
                view_minutes=[29_000_000],
                view_counts=[1_500],
                viewer_reel_ids=[reel] * len(users),
                viewer_user_ids=users,
                like_reel_ids=[reel] * 10,
                like_user_ids=list(range(1, 11)),
                like_ts_ms=[1] * 10,
                like_values=[True] * 10,
            ),
            timeout=10,
        )
        removal = counter_pb2.CorrectionBatch(
            batch_id="spam:verdict-1",
            reel_ids=[reel, other],
            view_deltas=[-300, -5],
            like_deltas=[-4, 0],
            reason="lockstep group 17",
            moves_to_removed=True,
        )
        assert await apply_corrections(removal, directory) == 2
        assert await apply_corrections(removal, directory) == 0  # the retry changes nothing
        views, removed, likes, likes_removed, unique = await read(stubs[0], reel)
        assert (views, removed, likes, likes_removed) == (1_200, 300, 6, 4)
        assert abs(unique - 1_500) <= 15

        with pytest.raises(aio.AioRpcError) as foreign:
            await stubs[0].ApplyCorrections(
                counter_pb2.CorrectionBatch(
                    batch_id="x", reel_ids=[reel, other], view_deltas=[1, 1], like_deltas=[0, 0]
                ),
                timeout=5,
            )
        assert foreign.value.code() == grpc.StatusCode.FAILED_PRECONDITION

        appeal = counter_pb2.CorrectionBatch(
            batch_id="spam:verdict-1:reversal",
            reel_ids=[reel],
            view_deltas=[300],
            like_deltas=[4],
            moves_to_removed=True,
        )
        await apply_corrections(appeal, directory)
        await directory.close()
        before_restart = await read(stubs[0], reel)
        assert before_restart[:4] == (1_500, 0, 10, 0)

    # A graceful restart writes a final snapshot; the new process loads it.
    shards[0].process.send_signal(signal.SIGTERM)
    assert await asyncio.to_thread(shards[0].process.wait, 20) == 0
    start_service("counter", "counter-0b", shards[0].env, addresses[0])
    async with aio.insecure_channel(addresses[0]) as ch0:
        stub = counter_pb2_grpc.CounterServiceStub(ch0)
        assert await read(stub, reel) == before_restart
        again = await stub.ApplyCorrections(
            counter_pb2.CorrectionBatch(
                batch_id="spam:verdict-1/shard-0",
                reel_ids=[reel],
                view_deltas=[-300],
                like_deltas=[-4],
                moves_to_removed=True,
            ),
            timeout=5,
        )
        assert again.duplicate
