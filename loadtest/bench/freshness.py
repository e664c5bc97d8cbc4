"""Freshness: how long an event acknowledged by one edge takes to be visible at another.

Every `interval_s` the probe sends one view of a reel no workload touches to edge A (the
writer); a poller asks edge B (the reader) for that reel's count every `poll_s`. Probe k is
visible once B's count reaches the count A had right after probe k was acknowledged: all
probe views go through A's journal and the same shard in sequence order, so B's count only
ever moves forward through them. Lag = from the moment probe k's send started to the first
answer from B that includes it. Probes are pipelined (one every interval whatever the lag),
so a long lag does not thin out the sample. Probes still unseen `grace_s` after the phase
ends are counted as timeouts, with the lag they had reached then (a lower bound).
"""

from __future__ import annotations

import asyncio
import time
from collections import deque
from dataclasses import dataclass, field

import numpy as np
from grpc import aio

from protos import common_pb2, edge_pb2_grpc
from reelstream.channels import open_channel

PROBE_REEL = 9_000_000_001
PROBE_USER = 1
CALL_TIMEOUT_S = 5.0


@dataclass
class FreshnessResult:
    lags_ms: list[float] = field(default_factory=list)
    timeouts: int = 0
    send_errors: int = 0

    def quantile_ms(self, quantile: float) -> float:
        if not self.lags_ms:
            return float("nan")
        return float(np.quantile(np.asarray(self.lags_ms), quantile))


@dataclass
class _Pending:
    expected_views: int
    sent_at: float


class FreshnessProbe:
    """Writes at `writer_address`, reads at `reader_address` (two different edges)."""

    def __init__(
        self,
        writer_address: str,
        reader_address: str,
        interval_s: float = 0.1,
        poll_s: float = 0.01,
        grace_s: float = 15.0,
    ) -> None:
        self._writer_channel = open_channel(writer_address)
        self._reader_channel = open_channel(reader_address)
        self._writer = edge_pb2_grpc.EdgeServiceStub(self._writer_channel)
        self._reader = edge_pb2_grpc.EdgeServiceStub(self._reader_channel)
        self._interval_s = interval_s
        self._poll_s = poll_s
        self._grace_s = grace_s
        self._probe = common_pb2.EventBatch(
            reel_ids=[PROBE_REEL],
            user_ids=[PROBE_USER],
            kinds=[common_pb2.EVENT_KIND_VIEW],
            watch_ms=[5_000],
        )

    async def _views(self, stub: edge_pb2_grpc.EdgeServiceAsyncStub) -> int:
        request = common_pb2.GetCountsRequest(reel_ids=[PROBE_REEL])
        response = await stub.GetCounts(request, timeout=CALL_TIMEOUT_S)
        return int(response.counts[0].views)

    async def _send_probes(
        self, seconds: float, pending: deque[_Pending], result: FreshnessResult
    ) -> None:
        # The writer's read includes its own unflushed views (read-your-writes).
        expected = await self._views(self._writer)
        start = time.perf_counter()
        next_at = start
        while next_at < start + seconds:
            sent_at = time.perf_counter()
            try:
                await self._writer.SendEvents(self._probe, timeout=CALL_TIMEOUT_S)
                expected += 1
                pending.append(_Pending(expected, sent_at))
            except aio.AioRpcError:
                # The view may or may not count: take the writer's word for the new total.
                result.send_errors += 1
                expected = await self._views(self._writer)
            next_at = max(next_at + self._interval_s, time.perf_counter())
            await asyncio.sleep(max(0.0, next_at - time.perf_counter()))

    async def _poll(
        self, pending: deque[_Pending], sending: asyncio.Task[None], result: FreshnessResult
    ) -> None:
        deadline: float | None = None
        while True:
            if sending.done() and deadline is None:
                deadline = time.perf_counter() + self._grace_s
            if sending.done() and not pending:
                return
            if deadline is not None and time.perf_counter() > deadline:
                now = time.perf_counter()
                result.timeouts += len(pending)
                result.lags_ms.extend((now - p.sent_at) * 1000 for p in pending)
                return
            if pending:
                try:
                    seen = await self._views(self._reader)
                except aio.AioRpcError:
                    seen = -1
                now = time.perf_counter()
                while pending and pending[0].expected_views <= seen:
                    result.lags_ms.append((now - pending.popleft().sent_at) * 1000)
            await asyncio.sleep(self._poll_s)

    async def run(self, seconds: float) -> FreshnessResult:
        """Probes for `seconds`, then waits up to the grace period for the last ones."""
        result = FreshnessResult()
        pending: deque[_Pending] = deque()
        sending = asyncio.create_task(self._send_probes(seconds, pending, result))
        await self._poll(pending, sending, result)
        await sending
        return result

    async def close(self) -> None:
        await self._writer_channel.close()
        await self._reader_channel.close()
