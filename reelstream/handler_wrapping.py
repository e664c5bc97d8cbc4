"""Rebuilding a grpc.aio method handler around a wrapped behaviour, for server interceptors
that must act inside the call (on the request, or on what the handler raises)."""

from __future__ import annotations

import inspect
from collections.abc import AsyncIterator, Callable
from typing import Any

import grpc

Behavior = Callable[..., Any]
Wrap = Callable[[Behavior, bool, bool], Behavior]
"""(behaviour, request_streaming, response_streaming) -> the wrapped behaviour."""


def rewrap_handler(
    handler: grpc.RpcMethodHandler[Any, Any],
    wrap: Wrap,
    request_deserializer: Callable[[bytes], Any] | None = None,
) -> grpc.RpcMethodHandler[Any, Any]:
    """`handler` with its behaviour passed through `wrap` (and, if given, another request
    deserializer); the same kind of handler with the same response serializer."""
    parse = request_deserializer or handler.request_deserializer
    serialize = handler.response_serializer
    if handler.unary_unary is not None:
        return grpc.unary_unary_rpc_method_handler(
            wrap(handler.unary_unary, False, False), parse, serialize
        )
    if handler.unary_stream is not None:
        return grpc.unary_stream_rpc_method_handler(
            wrap(handler.unary_stream, False, True), parse, serialize
        )
    if handler.stream_unary is not None:
        return grpc.stream_unary_rpc_method_handler(
            wrap(handler.stream_unary, True, False), parse, serialize
        )
    if handler.stream_stream is not None:
        return grpc.stream_stream_rpc_method_handler(
            wrap(handler.stream_stream, True, True), parse, serialize
        )
    return handler


async def relay_responses(result: Any) -> AsyncIterator[Any]:
    """The responses of a response-streaming behaviour's `result`: an async generator's
    items, or none for a handler that writes with context.write() and returns."""
    if inspect.isasyncgen(result):
        async for item in result:
            yield item
    else:
        await result
