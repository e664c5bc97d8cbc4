"""Every gRPC server counts its calls by method and status code and times them."""

from __future__ import annotations

import asyncio

import grpc
import pytest
from grpc import aio
from grpc_health.v1 import health, health_pb2, health_pb2_grpc
from prometheus_client import REGISTRY

from reelstream.grpc_metrics import MetricsInterceptor, split_method

SERVICE = "grpc.health.v1.Health"


def handled(method: str, code: str) -> float:
    value = REGISTRY.get_sample_value(
        "grpc_server_handled_total",
        {"grpc_service": SERVICE, "grpc_method": method, "grpc_code": code},
    )
    return value or 0.0


def timed(method: str) -> float:
    value = REGISTRY.get_sample_value(
        "grpc_server_handling_seconds_count", {"grpc_service": SERVICE, "grpc_method": method}
    )
    return value or 0.0


def test_method_names_split_into_service_and_method() -> None:
    assert split_method("/reelstream.v1.EdgeService/SendEvents") == (
        "reelstream.v1.EdgeService",
        "SendEvents",
    )
    assert split_method("garbage") == ("unknown", "garbage")


async def test_unary_and_streaming_calls_are_counted_with_their_codes() -> None:
    server = aio.server(interceptors=[MetricsInterceptor()], options=[("grpc.so_reuseport", 0)])
    servicer = health.aio.HealthServicer()
    health_pb2_grpc.add_HealthServicer_to_server(servicer, server)
    port = server.add_insecure_port("127.0.0.1:0")
    await server.start()
    await servicer.set("", health_pb2.HealthCheckResponse.SERVING)
    ok_before, missing_before = handled("Check", "OK"), handled("Check", "NOT_FOUND")
    timed_before = timed("Check")
    watch_before = handled("Watch", "CANCELLED") + handled("Watch", "OK")
    try:
        async with aio.insecure_channel(f"127.0.0.1:{port}") as channel:
            stub = health_pb2_grpc.HealthStub(channel)
            await stub.Check(health_pb2.HealthCheckRequest(service=""), timeout=5)
            with pytest.raises(aio.AioRpcError) as refused:
                await stub.Check(health_pb2.HealthCheckRequest(service="nope"), timeout=5)
            assert refused.value.code() == grpc.StatusCode.NOT_FOUND
            call = stub.Watch(health_pb2.HealthCheckRequest(service=""), timeout=5)
            first = await call.read()
            assert first.status == health_pb2.HealthCheckResponse.SERVING
            call.cancel()
            deadline = asyncio.get_running_loop().time() + 5
            while handled("Watch", "CANCELLED") + handled("Watch", "OK") == watch_before:
                assert asyncio.get_running_loop().time() < deadline, "Watch never counted"
                await asyncio.sleep(0.02)
    finally:
        await server.stop(None)
    assert handled("Check", "OK") == ok_before + 1
    assert handled("Check", "NOT_FOUND") == missing_before + 1
    assert timed("Check") == timed_before + 2
    assert handled("Watch", "CANCELLED") > 0
