"""Running a check before a handler: the common part of the authorisation and rate-limit
interceptors.

A grpc.aio server interceptor sees only the method name and metadata; who is calling (the
peer certificate, the peer address) is on the call's context, which exists once the handler
runs. So a guard wraps the handler: the check gets the method and the context and either
returns or aborts the call (with a status code and message), before the servicer sees the
request. Calls the guard refuses never reach the servicer.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any, TypeAlias

import grpc
from grpc import aio

from reelstream.handler_wrapping import Behavior, relay_responses, rewrap_handler

Context = aio.ServicerContext[Any, Any]
CallCheck = Callable[[str, Context], Awaitable[None]]
"""Given the full method name and the context: returns to let the call through, or aborts."""

Continuation: TypeAlias = (
    "Callable[[grpc.HandlerCallDetails], Awaitable[grpc.RpcMethodHandler[Any, Any] | None]]"
)


def guarded_handler(
    handler: grpc.RpcMethodHandler[Any, Any], method: str, check: CallCheck
) -> grpc.RpcMethodHandler[Any, Any]:
    """`handler` with `check` run before its behaviour."""

    def wrap(behavior: Behavior, request_streaming: bool, response_streaming: bool) -> Behavior:
        del request_streaming  # the check needs the context only
        if not response_streaming:

            async def checked(request: Any, context: Context) -> Any:
                await check(method, context)
                return await behavior(request, context)

            return checked

        async def checked_streaming(request: Any, context: Context) -> AsyncIterator[Any]:
            await check(method, context)
            async for item in relay_responses(behavior(request, context)):
                yield item

        return checked_streaming

    return rewrap_handler(handler, wrap)


class GuardInterceptor(aio.ServerInterceptor):
    """Runs `check` before every call the server handles."""

    def __init__(self, check: CallCheck) -> None:
        self._check = check

    async def intercept_service(
        self, continuation: Continuation, handler_call_details: grpc.HandlerCallDetails
    ) -> grpc.RpcMethodHandler[Any, Any] | None:
        handler = await continuation(handler_call_details)
        if handler is None:
            return None
        return guarded_handler(handler, handler_call_details.method, self._check)


def peer_identity(context: Context) -> str | None:
    """The subject CN of the caller's verified certificate; None on a plaintext call."""
    names = list(context.auth_context().get("x509_common_name", ()))
    return names[0].decode(errors="replace") if names else None


def peer_host(context: Context) -> str:
    """The caller's address without its port ('ipv4:127.0.0.1:4242' -> 'ipv4:127.0.0.1')."""
    peer = context.peer() or "unknown"
    host, _, port = peer.rpartition(":")
    return host if host and port.isdigit() else peer
