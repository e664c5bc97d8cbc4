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


_REQUIRED = (("reel_ids", np.uint64), ("user_ids", np.uint64), ("kinds", np.int64))
_OPTIONAL = (
    ("watch_ms", np.int64),
    ("client_ts_ms", np.int64),
    ("devices", np.int64),
    ("ip_hashes", np.uint64),
)
Part = tuple[common_pb2.EventBatch, IntpArray]


def forwarded_events(parts: list[Part]) -> common_pb2.EventBatch:
    """One batch of the events at each part's index, every column kept. An optional column
    a part lacks is filled with zeros ("unknown"), so every column stays aligned. Each
    column is gathered in numpy and written once (1.45 us per event when every part was
    cut into a batch of its own and then merged)."""
    merged = common_pb2.EventBatch()
    for name, dtype in (*_REQUIRED, *_OPTIONAL):
        if not any(len(getattr(batch, name)) for batch, _ in parts):
            continue
        pieces = []
        for batch, index in parts:
            count = len(batch.reel_ids)
            values = getattr(batch, name)
            if len(values) != count:
                pieces.append(np.zeros(len(index), dtype))
                continue
            column = np.asarray(values, dtype=dtype)
            pieces.append(column if len(index) == count else column[index])
        getattr(merged, name).extend(np.concatenate(pieces).tolist())
    if any(batch.countries for batch, _ in parts):
        pieces = []
        for batch, index in parts:
            if len(batch.countries) == 2 * len(batch.reel_ids):
                pieces.append(np.frombuffer(batch.countries, dtype="S2")[index])
            else:
                pieces.append(np.zeros(len(index), dtype="S2"))
        merged.countries = np.concatenate(pieces).tobytes()
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
            parts: list[Part] = []
            events = 0
            while self._queue and events < MAX_EVENTS_PER_CALL:
                batch, index = self._queue.popleft()
                self._queued_events -= len(index)
                parts.append((batch, index))
                events += len(index)
            merged = forwarded_events(parts)
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
