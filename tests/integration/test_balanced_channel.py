"""Balanced channels (reelstream/channels.py) against real gRPC servers on free ports: calls
spread round_robin, a member whose health is NOT_SERVING gets no calls until it is SERVING
again, idempotent reads are retried on another member and other calls are not, and the
same works over mutual TLS with several addresses in one target."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import grpc
import pytest
from grpc import aio
from grpc_health.v1 import health, health_pb2, health_pb2_grpc

from protos import origin_pb2, origin_pb2_grpc
from reelstream.channels import (
    ORIGIN_POLICY,
    BalancingPolicy,
    balanced_channel_options,
    balanced_target,
    open_balanced_channel,
)
from reelstream.infra.dev_certs import ensure_certificates
from reelstream.member_pool import MemberPool
from reelstream.security_settings import SecuritySettings
from reelstream.transport_security import channel_credentials

pytestmark = pytest.mark.timeout(60)

SERVING = health_pb2.HealthCheckResponse.SERVING
NOT_SERVING = health_pb2.HealthCheckResponse.NOT_SERVING


class CountingOrigin(origin_pb2_grpc.OriginServiceServicer):
    """Answers GetReels and ImportReels, counting them; `unavailable` refuses both."""

    def __init__(self) -> None:
        self.calls = 0
        self.unavailable = False

    async def _answer(self, context: grpc.aio.ServicerContext[object, object]) -> None:
        self.calls += 1
        if self.unavailable:
            await context.abort(grpc.StatusCode.UNAVAILABLE, "overloaded, try another")

    async def GetReels(
        self, request: origin_pb2.GetReelsRequest, context: grpc.aio.ServicerContext[object, object]
    ) -> origin_pb2.GetReelsResponse:
        await self._answer(context)
        return origin_pb2.GetReelsResponse()

    async def ImportReels(
        self,
        request: origin_pb2.ImportReelsRequest,
        context: grpc.aio.ServicerContext[object, object],
    ) -> origin_pb2.ImportReelsResponse:
        await self._answer(context)
        return origin_pb2.ImportReelsResponse()


@dataclass
class Member:
    servicer: CountingOrigin
    health: health.aio.HealthServicer
    server: aio.Server
    address: str

    async def set_health(
        self, status: health_pb2.HealthCheckResponse.ServingStatus.ValueType
    ) -> None:
        await self.health.set(ORIGIN_POLICY.service, status)


async def start_member(credentials: grpc.ServerCredentials | None = None) -> Member:
    server = aio.server(options=[("grpc.so_reuseport", 0)])
    servicer = CountingOrigin()
    health_servicer = health.aio.HealthServicer()
    origin_pb2_grpc.add_OriginServiceServicer_to_server(servicer, server)
    health_pb2_grpc.add_HealthServicer_to_server(health_servicer, server)
    if credentials is None:
        port = server.add_insecure_port("127.0.0.1:0")
    else:
        port = server.add_secure_port("127.0.0.1:0", credentials)
    await server.start()
    await health_servicer.set(ORIGIN_POLICY.service, SERVING)
    return Member(servicer, health_servicer, server, f"127.0.0.1:{port}")


@pytest.fixture
async def members() -> AsyncIterator[list[Member]]:
    started = [await start_member() for _ in range(3)]
    yield started
    for member in started:
        await member.server.stop(0)


async def get_reels(stub: origin_pb2_grpc.OriginServiceAsyncStub, calls: int) -> None:
    for _ in range(calls):
        await stub.GetReels(origin_pb2.GetReelsRequest(reel_ids=[1]), timeout=5)


async def test_calls_spread_round_robin_over_every_member(members: list[Member]) -> None:
    async with open_balanced_channel([m.address for m in members], ORIGIN_POLICY) as channel:
        await get_reels(origin_pb2_grpc.OriginServiceStub(channel), 60)
    # Strictly even once every connection is up; the first calls go to whichever is first.
    assert min(m.servicer.calls for m in members) >= 15, [m.servicer.calls for m in members]


async def test_a_not_serving_member_leaves_the_pool_and_comes_back(members: list[Member]) -> None:
    async with open_balanced_channel([m.address for m in members], ORIGIN_POLICY) as channel:
        stub = origin_pb2_grpc.OriginServiceStub(channel)
        await get_reels(stub, 30)
        await members[1].set_health(NOT_SERVING)
        # The client's health Watch learns it at once; allow the update to arrive.
        await asyncio.sleep(0.3)
        before = members[1].servicer.calls
        await get_reels(stub, 60)
        assert members[1].servicer.calls == before
        assert members[0].servicer.calls + members[2].servicer.calls == 30 - before + 60

        await members[1].set_health(SERVING)

        async def back_in_pool() -> bool:
            await get_reels(stub, 6)
            return members[1].servicer.calls > before

        deadline = asyncio.get_running_loop().time() + 5
        while not await back_in_pool():
            assert asyncio.get_running_loop().time() < deadline, "member never came back"


async def test_idempotent_reads_are_retried_on_another_member_and_writes_are_not(
    members: list[Member],
) -> None:
    members[0].servicer.unavailable = True
    async with open_balanced_channel([m.address for m in members], ORIGIN_POLICY) as channel:
        stub = origin_pb2_grpc.OriginServiceStub(channel)
        await get_reels(stub, 30)  # every call succeeds: refused ones go to another member
        assert members[0].servicer.calls > 0
        before = members[0].servicer.calls
        codes = []
        for _ in range(30):
            call = stub.ImportReels(origin_pb2.ImportReelsRequest(), timeout=5)
            with contextlib.suppress(aio.AioRpcError):
                await call
            codes.append(await call.code())
        # ImportReels is not in ORIGIN_POLICY.retried_methods: refused calls reach the caller.
        assert codes.count(grpc.StatusCode.UNAVAILABLE) == members[0].servicer.calls - before
        assert codes.count(grpc.StatusCode.UNAVAILABLE) >= 5, codes


async def test_member_pool_without_registry_balances_over_its_seeds(
    members: list[Member],
) -> None:
    pool = MemberPool("origin", ORIGIN_POLICY, None, [m.address for m in members])
    try:
        await get_reels(pool.stub(origin_pb2_grpc.OriginServiceStub), 30)
        assert all(m.servicer.calls > 0 for m in members), [m.servicer.calls for m in members]
        assert pool.addresses == tuple(sorted(m.address for m in members))
    finally:
        await pool.close()


async def test_balancing_over_several_addresses_works_with_mutual_tls(tmp_path: Path) -> None:
    certs = tmp_path / "certs"
    ensure_certificates(certs, identities=("origin", "edge"))
    server_credentials = grpc.ssl_server_credentials(
        [((certs / "origin.key").read_bytes(), (certs / "origin.pem").read_bytes())],
        root_certificates=(certs / "ca.pem").read_bytes(),
        require_client_auth=True,
    )
    started = [await start_member(server_credentials) for _ in range(2)]
    try:
        # What open_balanced_channel builds when TLS is on, with this test's certificates.
        credentials = channel_credentials("edge", SecuritySettings(certs_dir=str(certs)))
        assert credentials is not None
        target = balanced_target([m.address for m in started])
        options = balanced_channel_options(ORIGIN_POLICY, secure=True)
        async with aio.secure_channel(target, credentials, options=options) as channel:
            await get_reels(origin_pb2_grpc.OriginServiceStub(channel), 20)
        assert all(m.servicer.calls > 0 for m in started), [m.servicer.calls for m in started]
    finally:
        for member in started:
            await member.server.stop(0)


def test_targets_name_every_address_or_one_dns_name() -> None:
    assert balanced_target(["127.0.0.1:1", "127.0.0.2:2"]) == "ipv4:127.0.0.1:1,127.0.0.2:2"
    assert balanced_target(["[::1]:1", "[::1]:2"]) == "ipv6:[::1]:1,[::1]:2"
    assert balanced_target(["origin.svc:50071"]) == "dns:///origin.svc:50071"
    assert balanced_target(["dns:///edge-headless:50051"]) == "dns:///edge-headless:50051"
    for bad in ([], ["a.example:1", "b.example:1"], ["127.0.0.1:1", "[::1]:1"], ["host"]):
        with pytest.raises(ValueError, match=r"."):
            balanced_target(bad)
    assert BalancingPolicy(service="x").retried_methods == ()
