"""The gRPC load driver shared by the pipeline and the do-nothing ceiling.

It sends pre-serialized `EventBatch` bytes (no client-side serialization: the channel's
request serializer is the identity) to `SendEvents` on one channel per server, either
closed-loop (a fixed number of calls in flight per channel, as fast as acknowledgments come
back) or open-loop at a fixed rate. Latency is measured per call; in the open-loop mode it is
measured from the call's *scheduled* start, so a stalled server cannot hide its queueing
(no coordinated omission). Every loop stops by itself at its deadline.
"""

from __future__ import annotations

import asyncio
import time
from collections import Counter
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

import grpc
import numpy as np
from grpc import aio

from loadtest.bench.workload import BatchPool, IntArray
from protos import edge_pb2
from reelstream.channels import open_channel

SEND_EVENTS = "/reelstream.v1.EdgeService/SendEvents"
CALL_TIMEOUT_S = 10.0
# Refusals that prove nothing was journaled; any other failure leaves the outcome unknown.
NOT_APPLIED = frozenset(
    (
        grpc.StatusCode.RESOURCE_EXHAUSTED,
        grpc.StatusCode.INVALID_ARGUMENT,
        grpc.StatusCode.UNIMPLEMENTED,
    )
)

SendCall = Callable[..., Awaitable[edge_pb2.SendEventsResponse]]


@dataclass
class DriveResult:
    """What one driven phase achieved."""

    label: str
    batches: int
    events: int = 0
    calls: int = 0
    elapsed_s: float = 0.0
    latencies_ms: list[float] = field(default_factory=list)
    sends: IntArray = field(default_factory=lambda: np.zeros(0, dtype=np.int64))
    unknown: IntArray = field(default_factory=lambda: np.zeros(0, dtype=np.int64))
    errors: Counter[str] = field(default_factory=Counter)
    accepted_mismatches: int = 0
    skipped: int = 0

    def __post_init__(self) -> None:
        self.sends = np.zeros(self.batches, dtype=np.int64)
        self.unknown = np.zeros(self.batches, dtype=np.int64)

    @property
    def events_per_s(self) -> float:
        return self.events / self.elapsed_s if self.elapsed_s > 0 else 0.0

    def latency_ms(self, quantile: float) -> float:
        if not self.latencies_ms:
            return float("nan")
        return float(np.quantile(np.asarray(self.latencies_ms), quantile))


class EdgeTargets:
    """One channel per server, opened inside the running loop, round-robin over them."""

    def __init__(self, addresses: list[str]) -> None:
        self.addresses = addresses
        self._channels = [open_channel(a) for a in addresses]
        self.send_calls: list[SendCall] = [
            ch.unary_unary(
                SEND_EVENTS,
                request_serializer=None,
                response_deserializer=edge_pb2.SendEventsResponse.FromString,
            )
            for ch in self._channels
        ]

    async def wait_ready(self, timeout_s: float = 30.0) -> None:
        for channel in self._channels:
            await asyncio.wait_for(channel.channel_ready(), timeout_s)

    async def close(self) -> None:
        for channel in self._channels:
            await channel.close()


async def _send(
    call: SendCall, pool: BatchPool, index: int, started: float, result: DriveResult
) -> None:
    slot = index % len(pool.payloads)
    try:
        response = await call(pool.payloads[slot], timeout=CALL_TIMEOUT_S)
    except aio.AioRpcError as exc:
        result.errors[exc.code().name] += 1
        if exc.code() not in NOT_APPLIED:
            result.unknown[slot] += 1
        elif exc.code() == grpc.StatusCode.RESOURCE_EXHAUSTED:
            await asyncio.sleep(0.02)  # the edge asks for backoff
        return
    finished = time.perf_counter()
    result.latencies_ms.append((finished - started) * 1000)
    result.calls += 1
    result.events += response.accepted
    result.sends[slot] += 1
    if response.accepted != pool.accepted[slot]:
        result.accepted_mismatches += 1


async def drive_closed_loop(
    targets: EdgeTargets, pool: BatchPool, seconds: float, inflight: int, label: str
) -> DriveResult:
    """`inflight` calls per channel back to back until `seconds` have passed."""
    result = DriveResult(label, len(pool.payloads))
    counter = iter(range(10**12))
    start = time.perf_counter()
    deadline = start + seconds
    last_done = start

    async def worker(call: SendCall) -> None:
        nonlocal last_done
        while time.perf_counter() < deadline:
            await _send(call, pool, next(counter), time.perf_counter(), result)
            last_done = max(last_done, time.perf_counter())

    async with asyncio.TaskGroup() as group:
        for call in targets.send_calls:
            for _ in range(inflight):
                group.create_task(worker(call))
    result.elapsed_s = last_done - start
    return result


async def drive_rate(
    targets: EdgeTargets,
    pool: BatchPool,
    seconds: float,
    events_per_s: float,
    max_inflight: int,
    label: str,
) -> DriveResult:
    """Starts one call every batch_events / events_per_s seconds (round-robin over servers).

    A call whose slot comes while `max_inflight` calls are pending is skipped and counted:
    the driver never queues unboundedly, and `skipped` shows the rate was not sustained.
    """
    result = DriveResult(label, len(pool.payloads))
    interval_s = pool.events_per_batch / events_per_s
    pending: set[asyncio.Task[None]] = set()
    start = time.perf_counter()
    index = 0
    while True:
        scheduled = start + index * interval_s
        if scheduled >= start + seconds:
            break
        delay = scheduled - time.perf_counter()
        if delay > 0:
            await asyncio.sleep(delay)
        if len(pending) >= max_inflight:
            result.skipped += 1
        else:
            call = targets.send_calls[index % len(targets.send_calls)]
            task = asyncio.create_task(_send(call, pool, index, scheduled, result))
            pending.add(task)
            task.add_done_callback(pending.discard)
        index += 1
    if pending:
        await asyncio.wait(pending)
    result.elapsed_s = time.perf_counter() - start
    return result
