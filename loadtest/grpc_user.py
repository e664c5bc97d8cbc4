"""gRPC for Locust: a client interceptor that reports every call to Locust's `request` event,
and the `GrpcUser` base class whose channels carry it.

grpc's blocking calls would stall every other simulated user of the process, so gRPC is
switched to gevent (`init_gevent`) at import, before any channel exists. Each reported call
carries request_type "grpc", the method as "Service/Method", the response time in ms, the
response's serialized size and the RpcError, if any; its context names the user class.
Unary-unary and client-streaming calls (SendEvents, GetCounts, Upload, ...) are covered;
the suite makes no streaming-response call.

Channels use mutual TLS like every Reelstream client (reelstream/channels.py): simulated
apps present the `app` certificate, moderators the `moderator` one (`identity` of the user
class), catalog seeding the `admin` one; plaintext with REELSTREAM_PLAINTEXT=1.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from typing import Any, ClassVar, TypeVar

import grpc
import grpc.experimental.gevent as grpc_gevent
from google.protobuf.message import Message
from locust import User
from locust.env import Environment

from loadtest.auth_token import with_token
from reelstream.caller_policy import APP
from reelstream.channels import (
    BalancingPolicy,
    open_balanced_blocking_channel,
    open_blocking_channel,
)

grpc_gevent.init_gevent()

RequestT = TypeVar("RequestT")
ResponseT = TypeVar("ResponseT")


def short_method_name(method: str | bytes) -> str:
    """'/reelstream.v1.EdgeService/SendEvents' -> 'EdgeService/SendEvents'."""
    text = method.decode() if isinstance(method, bytes) else method
    service, _, name = text.lstrip("/").rpartition("/")
    return f"{service.rpartition('.')[2]}/{name}"


# Answers that are a normal outcome for the calling user, not a failed request: they are
# reported under "<method> (<CODE>)" without an exception.
OUTCOME_CODES: dict[str, frozenset[grpc.StatusCode]] = {
    # A moderator asking for work when the review queue is empty.
    "ModerationService/ClaimReview": frozenset({grpc.StatusCode.NOT_FOUND}),
}


class LocustInterceptor(grpc.UnaryUnaryClientInterceptor, grpc.StreamUnaryClientInterceptor):
    """Times each call and fires Locust's request event when it completes."""

    def __init__(self, environment: Environment, context: dict[str, Any]) -> None:
        self._environment = environment
        self._context = context

    def _complete(
        self, method: str | bytes, started: float, call: grpc._CallFuture[ResponseT]
    ) -> grpc._CallFuture[ResponseT]:
        exception: BaseException | None = None
        length = 0
        name = short_method_name(method)
        try:
            response = call.result()
            if isinstance(response, Message):
                length = response.ByteSize()
        except grpc.RpcError as exc:
            code = exc.code() if isinstance(exc, grpc.Call) else None
            if code is not None and code in OUTCOME_CODES.get(name, frozenset()):
                name = f"{name} ({code.name})"
            else:
                exception = exc
        self._environment.events.request.fire(
            request_type="grpc",
            name=name,
            response_time=(time.perf_counter() - started) * 1000,
            response_length=length,
            response=None,
            context=self._context,
            exception=exception,
        )
        return call

    def intercept_unary_unary(
        self,
        continuation: Callable[[grpc.ClientCallDetails, RequestT], grpc._CallFuture[ResponseT]],
        client_call_details: grpc.ClientCallDetails,
        request: RequestT,
    ) -> grpc._CallFuture[ResponseT]:
        started = time.perf_counter()
        call = continuation(client_call_details, request)
        return self._complete(client_call_details.method, started, call)

    def intercept_stream_unary(
        self,
        continuation: Callable[
            [grpc.ClientCallDetails, Iterator[RequestT]], grpc._CallFuture[ResponseT]
        ],
        client_call_details: grpc.ClientCallDetails,
        request_iterator: Iterator[RequestT],
    ) -> grpc._CallFuture[ResponseT]:
        started = time.perf_counter()
        call = continuation(client_call_details, request_iterator)
        return self._complete(client_call_details.method, started, call)


def reporting_channel(
    address: str, environment: Environment, context: dict[str, Any], identity: str = APP
) -> grpc.Channel:
    """A channel to `address` presenting `identity` whose calls are reported to Locust."""
    channel = with_token(open_blocking_channel(address, identity))
    return grpc.intercept_channel(channel, LocustInterceptor(environment, context))


def reporting_balanced_channel(
    addresses: tuple[str, ...],
    policy: BalancingPolicy,
    environment: Environment,
    context: dict[str, Any],
    identity: str = APP,
) -> grpc.Channel:
    """One channel balancing over `addresses` (round_robin over the healthy ones, reads
    retried on UNAVAILABLE; reelstream/channels.py), its calls reported to Locust."""
    channel = with_token(open_balanced_blocking_channel(addresses, policy, identity))
    return grpc.intercept_channel(channel, LocustInterceptor(environment, context))


class GrpcUser(User):
    """A Locust user that talks gRPC: `channel(address)` gives it one reporting channel per
    address (a real client keeps its connection), closed when the user stops."""

    abstract = True
    identity: ClassVar[str] = APP
    """The certificate this kind of user presents (docs/security.md)."""

    def __init__(self, environment: Environment) -> None:
        super().__init__(environment)
        self._channels: dict[str, grpc.Channel] = {}

    def context(self) -> dict[str, Any]:
        """Attached to every request this user reports (per-class statistics use it)."""
        return {"user_class": type(self).__name__}

    def channel(self, address: str) -> grpc.Channel:
        channel = self._channels.get(address)
        if channel is None:
            channel = reporting_channel(address, self.environment, self.context(), self.identity)
            self._channels[address] = channel
        return channel

    def balanced_channel(self, addresses: tuple[str, ...], policy: BalancingPolicy) -> grpc.Channel:
        """This user's one channel balancing over `addresses` (made on first use)."""
        key = "balanced:" + ",".join(addresses)
        channel = self._channels.get(key)
        if channel is None:
            channel = reporting_balanced_channel(
                addresses, policy, self.environment, self.context(), self.identity
            )
            self._channels[key] = channel
        return channel

    def close_channels(self) -> None:
        for channel in self._channels.values():
            channel.close()
        self._channels.clear()

    def on_stop(self) -> None:
        self.close_channels()
