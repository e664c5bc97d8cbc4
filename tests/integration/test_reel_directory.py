"""The edge's reel directory asks the origin once for reels many calls miss at once, and
accepts events unchecked (without caching a guess) when the origin is down."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest
from grpc import aio

from edge.event_validation import ReelInfo
from edge.reel_directory import ASSUMED, ReelDirectory
from protos import origin_pb2, origin_pb2_grpc
from reelstream.channels import ORIGIN_POLICY
from reelstream.member_pool import MemberPool


class CountingOrigin(origin_pb2_grpc.OriginServiceServicer):
    def __init__(self) -> None:
        self.calls: list[list[int]] = []

    async def GetReels(
        self, request: origin_pb2.GetReelsRequest, context: object
    ) -> origin_pb2.GetReelsResponse:
        self.calls.append(list(request.reel_ids))
        await asyncio.sleep(0.05)  # long enough for every concurrent miss to pile up
        return origin_pb2.GetReelsResponse(
            reels=[
                origin_pb2.ReelBrief(
                    reel_id=r,
                    state=origin_pb2.REEL_STATE_REMOVED
                    if r == 2
                    else origin_pb2.REEL_STATE_PUBLISHED,
                    duration_ms=10_000,
                )
                for r in request.reel_ids
                if r < 100
            ]
        )


def _origin_pool(address: str) -> MemberPool:
    """The edge's origin pool with `address` as its only (seed) member."""
    return MemberPool("origin", ORIGIN_POLICY, None, [address])


@pytest.fixture
async def origin() -> AsyncIterator[tuple[CountingOrigin, str]]:
    server = aio.server(options=[("grpc.so_reuseport", 0)])
    servicer = CountingOrigin()
    origin_pb2_grpc.add_OriginServiceServicer_to_server(servicer, server)
    port = server.add_insecure_port("127.0.0.1:0")
    await server.start()
    yield servicer, f"127.0.0.1:{port}"
    await server.stop(0)


async def test_concurrent_misses_share_one_origin_call(
    origin: tuple[CountingOrigin, str],
) -> None:
    servicer, address = origin
    directory = ReelDirectory(_origin_pool(address), 1000, ttl_s=60, unknown_ttl_s=5, timeout_s=5)
    try:
        answers = await asyncio.gather(*(directory.lookup([1, 2, 500]) for _ in range(50)))
        assert len(servicer.calls) == 1
        assert (
            answers[0]
            == answers[-1]
            == {
                1: ReelInfo(removed=False, duration_ms=10_000),
                2: ReelInfo(removed=True, duration_ms=10_000),
                500: None,
            }
        )
        await directory.lookup([1, 2, 500])
        assert len(servicer.calls) == 1  # all three cached, the unknown one too
    finally:
        await directory.close()


async def test_an_unreachable_origin_means_unchecked_not_unknown() -> None:
    directory = ReelDirectory(
        _origin_pool("127.0.0.1:1"), 1000, ttl_s=60, unknown_ttl_s=5, timeout_s=1
    )
    try:
        assert await directory.lookup([7]) == {7: ASSUMED}
        assert await directory.lookup([7]) == {7: ASSUMED}
    finally:
        await directory.close()
