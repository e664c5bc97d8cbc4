"""Prometheus metrics of every gRPC server: calls by method and status code, and latency.

A grpc.aio server interceptor (installed by `reelstream/service_shell.py`) wraps each method
handler. Names and labels follow the go-grpc-prometheus convention that dashboards expect:

- `grpc_server_handled_total{grpc_service, grpc_method, grpc_code}`: finished calls;
- `grpc_server_handling_seconds{grpc_service, grpc_method}`: histogram of call durations
  (for a streaming call: until the stream ends).

Label values are bounded: services and methods come from the server's own handlers (an
unknown method has no handler and is not counted), codes from `grpc.StatusCode`.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import grpc
from grpc import aio
from prometheus_client import Counter, Histogram

HANDLED = Counter(
    "grpc_server_handled_total",
    "gRPC calls finished on the server",
    ["grpc_service", "grpc_method", "grpc_code"],
)
HANDLING_SECONDS = Histogram(
    "grpc_server_handling_seconds",
    "gRPC call duration on the server",
    ["grpc_service", "grpc_method"],
    buckets=(0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30),
)


def split_method(full_method: str) -> tuple[str, str]:
    """'/reelstream.v1.EdgeService/SendEvents' -> ('reelstream.v1.EdgeService', 'SendEvents')."""
    service, _, method = full_method.lstrip("/").rpartition("/")
    return service or "unknown", method or "unknown"


def _code_of(context: aio.ServicerContext[Any, Any], error: BaseException | None) -> str:
    if isinstance(error, asyncio.CancelledError):
        return grpc.StatusCode.CANCELLED.name
    code = context.code()
    if isinstance(code, grpc.StatusCode):
        return code.name
    if isinstance(code, int):  # some grpc versions report the numeric code
        return next((c.name for c in grpc.StatusCode if c.value[0] == code), "UNKNOWN")
    return "UNKNOWN" if error is not None else grpc.StatusCode.OK.name


class _CallTimer:
    def __init__(self, service: str, method: str) -> None:
        self.service, self.method = service, method
        self.started = time.perf_counter()

    def finish(self, context: aio.ServicerContext[Any, Any], error: BaseException | None) -> None:
        HANDLING_SECONDS.labels(self.service, self.method).observe(
            time.perf_counter() - self.started
        )
        HANDLED.labels(self.service, self.method, _code_of(context, error)).inc()


class MetricsInterceptor(aio.ServerInterceptor):
    """Counts and times every call the server handles."""

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
        service, method = split_method(handler_call_details.method)
        if handler.unary_unary is not None:
            return grpc.unary_unary_rpc_method_handler(
                _unary(handler.unary_unary, service, method),
                request_deserializer=handler.request_deserializer,
                response_serializer=handler.response_serializer,
            )
        if handler.stream_unary is not None:
            return grpc.stream_unary_rpc_method_handler(
                _unary(handler.stream_unary, service, method),
                request_deserializer=handler.request_deserializer,
                response_serializer=handler.response_serializer,
            )
        if handler.unary_stream is not None:
            return grpc.unary_stream_rpc_method_handler(
                _streaming(handler.unary_stream, service, method),
                request_deserializer=handler.request_deserializer,
                response_serializer=handler.response_serializer,
            )
        if handler.stream_stream is not None:
            return grpc.stream_stream_rpc_method_handler(
                _streaming(handler.stream_stream, service, method),
                request_deserializer=handler.request_deserializer,
                response_serializer=handler.response_serializer,
            )
        return handler


def _unary(behavior: Callable[..., Any], service: str, method: str) -> Callable[..., Any]:
    async def timed(request: Any, context: aio.ServicerContext[Any, Any]) -> Any:
        timer = _CallTimer(service, method)
        try:
            response = await behavior(request, context)
        except BaseException as exc:
            timer.finish(context, exc)
            raise
        timer.finish(context, None)
        return response

    return timed


def _streaming(behavior: Callable[..., Any], service: str, method: str) -> Callable[..., Any]:
    async def timed(request: Any, context: aio.ServicerContext[Any, Any]) -> AsyncIterator[Any]:
        timer = _CallTimer(service, method)
        try:
            result = behavior(request, context)
            if hasattr(result, "__aiter__"):
                async for item in result:
                    yield item
            else:  # a handler that writes with context.write() and returns
                await result
        except BaseException as exc:
            timer.finish(context, exc)
            raise
        timer.finish(context, None)

    return timed
