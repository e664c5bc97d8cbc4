"""Forwards accepted events to the spam service (SubmitEvents) in columnar batches.

Intake only queues (batch, positions of its accepted events): the columns are cut in the
sender loop, off the acknowledgement path. The queue is bounded by events; what does not
fit, or what the spam service refuses or cannot take, is shed and counted
(`edge_spam_events_shed_total`) and reported to the service in `shed_before`. Forwarding is
best effort: counting never waits for it.
"""

from __future__ import annotations

import asyncio
import logging
from collections import deque
from collections.abc import Callable

import grpc
import numpy as np
import numpy.typing as npt
from prometheus_client import Counter

from protos import common_pb2, spam_pb2, spam_pb2_grpc
from reelstream.channels import open_channel

logger = logging.getLogger(__name__)

FORWARDED = Counter("edge_spam_events_forwarded_total", "Events sent to the spam service")
SHED = Counter("edge_spam_events_shed_total", "Events not forwarded to the spam service")

IntpArray = npt.NDArray[np.intp]
MAX_EVENTS_PER_CALL = 50_000


def _pick(values: object, index: IntpArray, count: int, dtype: type) -> list[int]:
    column = np.fromiter(values, dtype=dtype, count=count)  # type: ignore[call-overload]
    picked: list[int] = column[index].tolist()
    return picked


def columns_of(batch: common_pb2.EventBatch, index: IntpArray) -> common_pb2.EventBatch:
    """The events at `index` of `batch`, every column kept."""
    count = len(batch.reel_ids)
    out = common_pb2.EventBatch(
        reel_ids=_pick(batch.reel_ids, index, count, np.uint64),
        user_ids=_pick(batch.user_ids, index, count, np.uint64),
        kinds=_pick(batch.kinds, index, count, np.int64),  # type: ignore[arg-type]
    )
    for name, dtype in (
        ("watch_ms", np.int64),
        ("client_ts_ms", np.int64),
        ("devices", np.int64),
        ("ip_hashes", np.uint64),
    ):
        if len(getattr(batch, name)) == count:
            getattr(out, name).extend(_pick(getattr(batch, name), index, count, dtype))
    if len(batch.countries) == 2 * count:
        pairs = np.frombuffer(batch.countries, dtype=">u2")
        out.countries = pairs[index].tobytes()
    return out


def merge_batches(parts: list[common_pb2.EventBatch]) -> common_pb2.EventBatch:
    """One batch of every part's events. An optional column some parts lack is filled with
    zeros ("unknown"), so every column stays aligned."""
    merged = common_pb2.EventBatch()
    for name in ("reel_ids", "user_ids", "kinds"):
        for part in parts:
            getattr(merged, name).extend(getattr(part, name))
    for name in ("watch_ms", "client_ts_ms", "devices", "ip_hashes"):
        if any(len(getattr(part, name)) for part in parts):
            for part in parts:
                values = getattr(part, name)
                getattr(merged, name).extend(values if len(values) else [0] * len(part.reel_ids))
    if any(part.countries for part in parts):
        merged.countries = b"".join(
            part.countries or bytes(2 * len(part.reel_ids)) for part in parts
        )
    return merged


class SpamForwarder:
    def __init__(
        self, edge_id: str, address: str, max_events: int, interval_s: float, timeout_s: float
    ) -> None:
        self._edge_id = edge_id
        self._channel = open_channel(address)
        self.stub = spam_pb2_grpc.SpamServiceStub(self._channel)
        self._max_events = max_events
        self._interval_s = interval_s
        self._timeout_s = timeout_s
        self._queue: deque[tuple[common_pb2.EventBatch, IntpArray]] = deque()
        self._queued_events = 0
        self._seq = 0
        self.shed = 0
        self._shed_unreported = 0

    def offer(self, batch: common_pb2.EventBatch, accepted_index: IntpArray) -> None:
        """Queues the accepted events of `batch` (or sheds them, counted)."""
        count = len(accepted_index)
        if not count:
            return
        if self._queued_events + count > self._max_events:
            self._count_shed(count)
            return
        self._queue.append((batch, accepted_index))
        self._queued_events += count

    def _count_shed(self, count: int) -> None:
        self.shed += count
        self._shed_unreported += count
        SHED.inc(count)

    async def run_sender(self) -> None:
        while True:
            await asyncio.sleep(self._interval_s)
            await self.send_queued()

    async def send_queued(self) -> None:
        while self._queue:
            parts: list[common_pb2.EventBatch] = []
            events = 0
            while self._queue and events < MAX_EVENTS_PER_CALL:
                batch, index = self._queue.popleft()
                self._queued_events -= len(index)
                parts.append(columns_of(batch, index))
                events += len(index)
            merged = merge_batches(parts)
            self._seq += 1
            shed_before, self._shed_unreported = self._shed_unreported, 0
            request = spam_pb2.SubmitEventsRequest(
                edge_id=self._edge_id, seq=self._seq, events=merged, shed_before=shed_before
            )
            try:
                response = await self.stub.SubmitEvents(request, timeout=self._timeout_s)
            except grpc.RpcError as exc:
                self._count_shed(events)
                logger.warning(
                    "spam service did not take a batch; shed",
                    extra={"fields": {"events": events, "error": exc}},
                )
                return
            FORWARDED.inc(response.accepted)
            if response.accepted < events:
                self._count_shed(events - response.accepted)

    async def run_blocklist(self, on_update: Callable[[spam_pb2.Blocklist], None]) -> None:
        """Follows WatchBlocklist, reconnecting after a pause when the stream breaks."""
        while True:
            try:
                # No deadline: a subscription for the edge's lifetime. Channel keepalive
                # (reelstream/channels.py) breaks it when the spam service stops answering.
                stream = self.stub.WatchBlocklist(
                    spam_pb2.WatchBlocklistRequest(edge_id=self._edge_id)
                )
                async for blocklist in stream:
                    on_update(blocklist)
            except grpc.RpcError as exc:
                logger.info("blocklist stream broke", extra={"fields": {"error": exc}})
            await asyncio.sleep(2.0)

    async def close(self) -> None:
        await self._channel.close()
