"""Per-caller rate limits on every server: a token bucket per caller, one token per RPC.

The caller is its certificate identity at its peer host (many apps share the `app`
identity, each from its own address), or the peer host alone in plaintext.
Limits count RPCs, not the events inside them: the edge->counter path carries ~200k
events/s in a few hundred batches/s, far below the defaults (`SecuritySettings`). A caller
over its limit gets RESOURCE_EXHAUSTED naming it, the limit and when to retry, with the
delay also as `google.rpc.RetryInfo` in the status details and as `retry-after-ms`
trailing metadata. Buckets of at most `max_callers` callers are kept (least recently seen
forgotten first, starting full again), so memory stays bounded whatever the peers.
"""

from __future__ import annotations

import math
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass

import grpc
from google.protobuf import any_pb2, duration_pb2
from google.rpc import code_pb2, error_details_pb2, status_pb2
from grpc_status import rpc_status

from reelstream.call_guards import Context, GuardInterceptor, peer_host, peer_identity


@dataclass(slots=True)
class TokenBucket:
    """`burst` tokens at most, refilled at `rate_per_s`; each call takes one."""

    rate_per_s: float
    burst: float
    tokens: float
    updated_s: float

    def take(self, now_s: float) -> float:
        """Takes a token; returns 0 when one was there, else seconds until there will be."""
        self.tokens = min(self.burst, self.tokens + (now_s - self.updated_s) * self.rate_per_s)
        self.updated_s = now_s
        if self.tokens >= 1:
            self.tokens -= 1
            return 0.0
        return (1 - self.tokens) / self.rate_per_s


class CallerBuckets:
    """One bucket per caller key, at most `max_callers` of them."""

    def __init__(
        self,
        rate_per_s: float,
        burst: float,
        max_callers: int,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._rate_per_s = rate_per_s
        self._burst = burst
        self._max_callers = max_callers
        self._clock = clock
        self._buckets: OrderedDict[str, TokenBucket] = OrderedDict()

    def retry_after_s(self, caller: str) -> float:
        """Charges one call to `caller`: 0 when allowed, else seconds to wait."""
        now_s = self._clock()
        bucket = self._buckets.get(caller)
        if bucket is None:
            bucket = TokenBucket(self._rate_per_s, self._burst, self._burst, now_s)
            self._buckets[caller] = bucket
            if len(self._buckets) > self._max_callers:
                self._buckets.popitem(last=False)
        else:
            self._buckets.move_to_end(caller)
        return bucket.take(now_s)

    def __len__(self) -> int:
        return len(self._buckets)


def retry_trailers(message: str, retry_after_s: float) -> tuple[tuple[str, str | bytes], ...]:
    """Trailing metadata that tells the caller when to retry: RetryInfo in the rich status
    details (grpc-status-details-bin) and `retry-after-ms` for simple clients."""
    delay = duration_pb2.Duration()
    delay.FromNanoseconds(math.ceil(retry_after_s * 1e9))
    detail = any_pb2.Any()
    detail.Pack(error_details_pb2.RetryInfo(retry_delay=delay))
    status = status_pb2.Status(code=code_pb2.RESOURCE_EXHAUSTED, message=message, details=[detail])
    rich = rpc_status.to_status(status).trailing_metadata
    return (*rich, ("retry-after-ms", str(math.ceil(retry_after_s * 1000))))


class RateLimitInterceptor(GuardInterceptor):
    """Refuses a caller's calls beyond its token bucket with RESOURCE_EXHAUSTED."""

    def __init__(self, buckets: CallerBuckets, rate_per_s: float) -> None:
        self._buckets = buckets
        self._rate_per_s = rate_per_s
        super().__init__(self._limit)

    async def _limit(self, method: str, context: Context) -> None:
        identity = peer_identity(context)
        host = peer_host(context)
        caller = f"identity {identity!r} at {host}" if identity else f"peer {host}"
        retry_after_s = self._buckets.retry_after_s(caller)
        if retry_after_s > 0:
            message = (
                f"rate limit of {self._rate_per_s:g} RPCs/s exceeded by {caller} calling "
                f"{method}; retry after {retry_after_s * 1000:.0f} ms"
            )
            await context.abort(
                grpc.StatusCode.RESOURCE_EXHAUSTED,
                message,
                trailing_metadata=retry_trailers(message, retry_after_s),
            )
