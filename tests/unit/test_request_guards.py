"""The server-side guards every tier shares: undecodable requests and abort cycles."""

from __future__ import annotations

import asyncio
import gc
import weakref
from collections.abc import AsyncIterator
from typing import Any

import grpc
import pytest
from grpc import aio

from protos import common_pb2
from reelstream.abort_cycles import AbortCycleInterceptor, forget_frames
from reelstream.malformed_requests import Undecodable, safe_deserializer
from reelstream.request_limits import id_column_problem, reel_id_problem, reel_ids_problem


def test_an_undecodable_request_becomes_a_marker_with_the_parsers_reason() -> None:
    parse = safe_deserializer(common_pb2.EventBatch.FromString)
    parsed = parse(b"\x0a\xff\xff\xff\xff\x0f")
    assert isinstance(parsed, Undecodable)
    assert parsed.reason
    assert parse(common_pb2.EventBatch(reel_ids=[1]).SerializeToString()).reel_ids == [1]


def test_forgetting_frames_clears_every_chained_traceback() -> None:
    try:
        try:
            raise ValueError("inner")
        except ValueError as inner:
            raise RuntimeError("outer") from inner
    except RuntimeError as exc:
        error = exc
    assert error.__traceback__ is not None
    forget_frames(error)
    assert error.__traceback__ is None
    assert error.__cause__ is not None
    assert error.__cause__.__traceback__ is None


def test_an_id_column_with_one_id_outside_the_bigint_range_is_refused() -> None:
    assert id_column_problem("reel_ids", []) is None
    assert id_column_problem("reel_ids", [1, 2**63 - 1]) is None
    assert (
        id_column_problem("user_ids", [5, 2**63, 6])
        == f"user_ids must be in [1, 2^63); got {2**63}"
    )
    assert id_column_problem("reel_ids", [3, 0]) == "reel_ids must be in [1, 2^63); got 0"


def test_ids_outside_the_bigint_range_are_refused() -> None:
    assert reel_id_problem(1) is None
    assert reel_id_problem(2**63 - 1) is None
    assert reel_id_problem(0)
    assert reel_id_problem(2**63)
    assert reel_ids_problem([1, 2**64 - 1]) is not None
    assert reel_ids_problem([]) == "reel_ids is empty"
    assert reel_ids_problem(list(range(1, 1002))) is not None


class Payload:
    """A request that can be watched for release (protobuf messages take no weak refs)."""

    def __init__(self, data: bytes) -> None:
        self.data = data


async def refuse_mid_stream(requests: AsyncIterator[Payload], context: Any) -> bytes:
    async for _ in requests:
        await context.abort(grpc.StatusCode.INVALID_ARGUMENT, "refused")
    return b""


async def test_a_stream_refused_mid_way_frees_its_messages_without_a_collection() -> None:
    """Regression: a request stream's generator, left at a yield by a refusing handler, sat
    in a reference cycle with grpc's receiver and kept its last message until a collection
    (an edge grew by megabytes per refused StreamEvents call)."""
    received: list[weakref.ref[Payload]] = []

    def parse(data: bytes) -> Payload:
        payload = Payload(data)
        received.append(weakref.ref(payload))
        return payload

    handler = grpc.stream_unary_rpc_method_handler(refuse_mid_stream, parse, bytes)
    server = aio.server(
        interceptors=[AbortCycleInterceptor()],
        handlers=[grpc.method_handlers_generic_handler("t.T", {"Refuse": handler})],
    )
    port = server.add_insecure_port("127.0.0.1:0")
    await server.start()
    gc.disable()
    try:
        async with aio.insecure_channel(f"127.0.0.1:{port}") as channel:
            refuse = channel.stream_unary("/t.T/Refuse")
            for _ in range(3):
                with pytest.raises(aio.AioRpcError) as refused:
                    await refuse(iter([b"x" * 1000, b"y"]))
                assert refused.value.code() == grpc.StatusCode.INVALID_ARGUMENT
        await asyncio.sleep(0.05)  # the server task finishes after the client has its answer
        assert len(received) == 3
        assert [ref() for ref in received] == [None, None, None]
    finally:
        gc.enable()
        await server.stop(None)
