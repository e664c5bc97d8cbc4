"""Client-facing auth at a real edge: with user tokens required, events are accepted only
for the token's user, under any active key; missing, forged or foreign tokens are refused
with UNAUTHENTICATED or PERMISSION_DENIED and a message."""

from __future__ import annotations

import time
from collections.abc import Callable

import grpc
import pytest

from protos import common_pb2, edge_pb2_grpc
from reelstream.user_tokens import mint, parse_keys
from tests.integration.conftest import ServiceProcess, counter_env, edge_env, free_port

pytestmark = [pytest.mark.integration, pytest.mark.timeout(120)]

KEY_ENTRIES = ["old:old-secret-0123456789", "new:new-secret-0123456789"]


def views(user_ids: list[int]) -> common_pb2.EventBatch:
    return common_pb2.EventBatch(
        reel_ids=[5] * len(user_ids),
        user_ids=user_ids,
        kinds=[common_pb2.EVENT_KIND_VIEW] * len(user_ids),
        watch_ms=[5_000] * len(user_ids),
    )


def test_events_are_accepted_only_for_the_tokens_user(
    redis_port: int, keyspace: str, start_service: Callable[..., ServiceProcess]
) -> None:
    counter = f"127.0.0.1:{free_port()}"
    start_service("counter", "counter-0", counter_env(keyspace, 0, 1, counter), counter)
    address = f"127.0.0.1:{free_port()}"
    env = edge_env(keyspace, "edge-auth", address, redis_port, [counter])
    env["REELSTREAM_EDGE_REQUIRE_USER_TOKENS"] = "true"
    env["REELSTREAM_EDGE_USER_TOKEN_KEYS"] = ",".join(KEY_ENTRIES)
    start_service("edge", "edge-auth", env, address)
    keys = parse_keys(KEY_ENTRIES)
    expires = int(time.time()) + 600
    with grpc.insecure_channel(address) as channel:
        edge = edge_pb2_grpc.EdgeServiceStub(channel)

        details: dict[grpc.StatusCode, str] = {}

        def send(batch: common_pb2.EventBatch, token: str | None) -> grpc.StatusCode:
            metadata = [("authorization", f"Bearer {token}")] if token else []
            try:
                edge.SendEvents(batch, metadata=metadata, timeout=10)
            except grpc.RpcError as exc:
                details[exc.code()] = exc.details() or ""
                code: grpc.StatusCode = exc.code()
                return code
            return grpc.StatusCode.OK

        assert send(views([7]), mint(keys, "old", 7, expires)) == grpc.StatusCode.OK
        assert send(views([7]), mint(keys, "new", 7, expires)) == grpc.StatusCode.OK
        assert send(views([7, 8]), mint(keys, "new", 7, expires)) == (
            grpc.StatusCode.PERMISSION_DENIED
        )
        assert send(views([7]), None) == grpc.StatusCode.UNAUTHENTICATED
        forged = mint(parse_keys(["new:guessed-secret-0123456"]), "new", 7, expires)
        assert send(views([7]), forged) == grpc.StatusCode.UNAUTHENTICATED
        assert send(views([7]), mint(keys, "new", 7, int(time.time()) - 1)) == (
            grpc.StatusCode.UNAUTHENTICATED
        )
        assert send(views([7, 8, 9]), mint(keys, "old", "*", expires)) == grpc.StatusCode.OK
        with pytest.raises(grpc.RpcError) as error:
            edge.GetLikeState(
                common_pb2.GetLikeStateRequest(user_id=8, reel_ids=[5]),
                metadata=[("authorization", f"Bearer {mint(keys, 'new', 7, expires)}")],
                timeout=10,
            )
        assert error.value.code() == grpc.StatusCode.PERMISSION_DENIED
        assert "the token is for user 7" in details[grpc.StatusCode.PERMISSION_DENIED]
        assert "expired" in details[grpc.StatusCode.UNAUTHENTICATED]
        # Counts stay public.
        edge.GetCounts(common_pb2.GetCountsRequest(reel_ids=[5]), timeout=10)
