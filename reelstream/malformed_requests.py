"""Undecodable requests get INVALID_ARGUMENT, not UNKNOWN.

grpc.aio parses a request with the handler's deserializer before any servicer code runs;
when the bytes are not a valid encoding (a truncated field, a varint that never ends,
invalid UTF-8 in a string field) the exception escapes into grpc and the caller sees
UNKNOWN, which reads as a server bug. This interceptor (installed on every server by
`reelstream/service_shell.py`) wraps each deserializer so that a parse failure becomes an
`Undecodable` marker, and each behaviour so that the marker is refused with
INVALID_ARGUMENT and the parser's reason, for unary requests and every message of a request
stream alike. Found by the bad-input suite (tests/integration/test_fuzz_grpc.py).
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from typing import Any

import grpc
from grpc import aio

from reelstream.handler_wrapping import Behavior, relay_responses, rewrap_handler

Context = aio.ServicerContext[Any, Any]


@dataclass(frozen=True, slots=True)
class Undecodable:
    """A request message that could not be parsed, and why."""

    reason: str


def safe_deserializer(deserializer: Callable[[bytes], Any] | None) -> Callable[[bytes], Any]:
    """`deserializer`, returning `Undecodable` instead of raising."""

    def parse(data: bytes) -> Any:
        if deserializer is None:
            return data
        try:
            return deserializer(data)
        except Exception as exc:
            return Undecodable(f"{type(exc).__name__}: {exc}"[:200])

    return parse


async def _refuse(context: Context, message: Undecodable) -> None:
    await context.abort(
        grpc.StatusCode.INVALID_ARGUMENT, f"request is not a valid message: {message.reason}"
    )


async def _checked_stream(requests: AsyncIterator[Any], context: Context) -> AsyncIterator[Any]:
    async for request in requests:
        if isinstance(request, Undecodable):
            await _refuse(context, request)
        yield request


def _check(behavior: Behavior, request_streaming: bool, response_streaming: bool) -> Behavior:
    if request_streaming:

        async def checked_stream(requests: AsyncIterator[Any], context: Context) -> Any:
            return await behavior(_checked_stream(requests, context), context)

        async def checked_stream_streaming(
            requests: AsyncIterator[Any], context: Context
        ) -> AsyncIterator[Any]:
            async for item in relay_responses(
                behavior(_checked_stream(requests, context), context)
            ):
                yield item

        return checked_stream_streaming if response_streaming else checked_stream

    async def checked(request: Any, context: Context) -> Any:
        if isinstance(request, Undecodable):
            await _refuse(context, request)
        return await behavior(request, context)

    async def checked_streaming(request: Any, context: Context) -> AsyncIterator[Any]:
        if isinstance(request, Undecodable):
            await _refuse(context, request)
        async for item in relay_responses(behavior(request, context)):
            yield item

    return checked_streaming if response_streaming else checked


class MalformedRequestInterceptor(aio.ServerInterceptor):
    """Answers requests that do not parse with INVALID_ARGUMENT."""

    async def intercept_service(
        self,
        continuation: Callable[
            [grpc.HandlerCallDetails], Awaitable[grpc.RpcMethodHandler[Any, Any] | None]
        ],
        handler_call_details: grpc.HandlerCallDetails,
    ) -> grpc.RpcMethodHandler[Any, Any] | None:
        handler = await continuation(handler_call_details)
        if handler is None:
            return None
        return rewrap_handler(handler, _check, safe_deserializer(handler.request_deserializer))
