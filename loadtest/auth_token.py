"""Attach a signed user token to every gRPC call of the load generator.

`REELSTREAM_LOADTEST_TOKEN` (minted with `reelstream token --any-user ...`: simulated
viewers send events of many user ids) is sent as `authorization: Bearer <token>` when the
edges run with `require_user_tokens`. Unset: calls carry no token.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from typing import Any, NamedTuple

import grpc

TOKEN_ENV = "REELSTREAM_LOADTEST_TOKEN"


class _Details(NamedTuple):
    method: str
    timeout: float | None
    metadata: Any
    credentials: grpc.CallCredentials | None
    wait_for_ready: bool | None
    compression: Any


class BearerTokenInterceptor(
    grpc.UnaryUnaryClientInterceptor,
    grpc.StreamUnaryClientInterceptor,
    grpc.UnaryStreamClientInterceptor,
):
    def __init__(self, token: str) -> None:
        self._entry = ("authorization", f"Bearer {token}")

    def _with_token(self, details: grpc.ClientCallDetails) -> grpc.ClientCallDetails:
        metadata = [*(details.metadata or ()), self._entry]
        return _Details(  # type: ignore[return-value]
            details.method,
            details.timeout,
            metadata,
            details.credentials,
            getattr(details, "wait_for_ready", None),
            getattr(details, "compression", None),
        )

    def intercept_unary_unary(
        self, continuation: Callable[..., Any], details: grpc.ClientCallDetails, request: Any
    ) -> Any:
        return continuation(self._with_token(details), request)

    def intercept_stream_unary(
        self,
        continuation: Callable[..., Any],
        details: grpc.ClientCallDetails,
        request_iterator: Iterator[Any],
    ) -> Any:
        return continuation(self._with_token(details), request_iterator)

    def intercept_unary_stream(
        self, continuation: Callable[..., Any], details: grpc.ClientCallDetails, request: Any
    ) -> Any:
        return continuation(self._with_token(details), request)


def with_token(channel: grpc.Channel) -> grpc.Channel:
    """`channel`, adding the configured token to every call (unchanged when unset)."""
    token = os.environ.get(TOKEN_ENV, "")
    if not token:
        return channel
    return grpc.intercept_channel(channel, BearerTokenInterceptor(token))
