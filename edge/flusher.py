"""Forwarding of journaled events to the counter shards.

Every `flush_interval_s` the journal is cut into per-shard batches; one sender per shard
sends its outbox in sequence order, a sliding window of batches in flight, retrying with
capped exponential backoff until the shard acknowledges (a duplicate acknowledgment
counts: the shard had committed the batch before). Only then is the batch removed from
the outbox.
"""

from __future__ import annotations

import asyncio
import logging
import random
from typing import Any

from grpc import aio
from prometheus_client import Counter, Histogram

from edge.journal import EdgeJournal, OutboxBatch
from protos import counter_pb2
from reelstream.shard_directory import NoShardOwner, SerializedApply, ShardDirectory

logger = logging.getLogger(__name__)

BATCHES_SENT = Counter("edge_batches_acknowledged_total", "Batches acknowledged", ["shard"])
SEND_ERRORS = Counter("edge_batch_send_errors_total", "Failed batch sends", ["shard", "code"])
SEQUENCE_REUSE = Counter(
    "edge_sequence_reuse_total", "Never-sent batches a shard called duplicates", ["shard"]
)
SEND_SECONDS = Histogram("edge_batch_send_seconds", "ApplyBatch latency")


class ShardFlusher:
    """Cuts the journal on a timer and drives one sender per logical shard."""

    def __init__(
        self,
        journal: EdgeJournal,
        clients: ShardDirectory,
        flush_interval_s: float,
        rpc_timeout_s: float,
        window: int = 16,
    ) -> None:
        self._journal = journal
        self._clients = clients
        self._interval_s = flush_interval_s
        self._timeout_s = rpc_timeout_s
        self._window = window
        self._stopping = False
        self._wakeups = {shard: asyncio.Event() for shard in range(clients.shard_count)}

    async def run_cutter(self) -> None:
        while not self._stopping:
            await asyncio.sleep(self._interval_s)
            if await self._journal.cut():
                for event in self._wakeups.values():
                    event.set()

    async def run_sender(self, shard: int) -> None:
        """Sends the shard's outbox in sequence order with up to `window` batches in flight.

        The window slides: a batch goes out as soon as it is cut and a slot is free, not
        when the previous group has all been answered. Each batch leaves the outbox on its
        own acknowledgment only (a duplicate acknowledgment counts): inferring "every smaller
        sequence is committed" from a later one would be wrong across a journal reload or a
        new sequence space, and a reloaded copy of an acknowledged batch would then never
        leave. After a failure no new batch goes out; once the calls in flight have ended
        the sender waits (capped exponential backoff with jitter) and resends from the
        oldest unacknowledged batch, to whichever process serves the shard by then (a
        handoff shows up as refused calls; resent batches keep their ids, so the new owner
        applies each once).
        """
        wakeup = self._wakeups[shard]
        wakeup.set()
        backoff_s = 0.05
        in_flight: dict[asyncio.Future[None], OutboxBatch] = {}
        errors: list[BaseException] = []
        try:
            while True:
                if not errors:
                    self._top_up(shard, in_flight, errors)
                if not in_flight:
                    if errors:
                        backoff_s = await self._back_off(shard, errors, backoff_s)
                        if backoff_s < 0:
                            return
                        errors = []
                        continue
                    if self._stopping:
                        return
                    wakeup.clear()
                    await wakeup.wait()
                    continue
                woken: asyncio.Future[Any] = asyncio.ensure_future(wakeup.wait())
                waiters: list[asyncio.Future[Any]] = [*in_flight, woken]
                done, _ = await asyncio.wait(waiters, return_when=asyncio.FIRST_COMPLETED)
                woken.cancel()
                wakeup.clear()
                for call in sorted(done, key=lambda c: in_flight[c].seq if c in in_flight else 0):
                    batch = in_flight.pop(call, None)
                    if batch is None:
                        continue  # the wakeup
                    if call.cancelled():
                        errors.append(asyncio.CancelledError(f"send of seq {batch.seq}"))
                    elif (error := call.exception()) is not None:
                        errors.append(error)
                    else:
                        backoff_s = 0.05
                        BATCHES_SENT.labels(shard=str(shard)).inc()
                        await self._journal.acknowledge(batch)
        finally:
            for call in in_flight:
                call.cancel()

    def _top_up(
        self,
        shard: int,
        in_flight: dict[asyncio.Future[None], OutboxBatch],
        errors: list[BaseException],
    ) -> None:
        """Starts sending the oldest unsent batches while the window has room."""
        room = self._window - len(in_flight)
        if room <= 0:
            return
        sending = {batch.seq for batch in in_flight.values()}
        fresh = [
            batch
            for batch in self._journal.oldest_batches(shard, self._window)
            if batch.seq not in sending
        ][:room]
        if not fresh:
            return
        try:
            send = self._clients.apply_serialized(shard)
        except NoShardOwner as exc:
            errors.append(exc)
            return
        for batch in fresh:
            in_flight[asyncio.ensure_future(self._send(send, batch))] = batch

    async def _back_off(self, shard: int, errors: list[BaseException], backoff_s: float) -> float:
        """Waits before a resend after `errors`; returns the next backoff, or -1 to give up
        (stopping and the shard unreachable: the batches stay in the outbox)."""
        for error in errors:
            if not isinstance(error, aio.AioRpcError | NoShardOwner | asyncio.CancelledError):
                raise error
        # Refused (moved shard), unreachable or timed out: the owner may have changed.
        self._clients.mark_stale()
        first = errors[0]
        if isinstance(first, aio.AioRpcError):
            code, detail = first.code().name, first.details()
        elif isinstance(first, NoShardOwner):
            code, detail = "NO_OWNER", str(first)
        else:
            code, detail = "CANCELLED", str(first)
        if self._stopping and backoff_s >= 1.0:
            logger.warning(
                "shard unreachable at shutdown; batches stay in the outbox",
                extra={"fields": {"shard": shard}},
            )
            return -1.0
        oldest = self._journal.oldest_batches(shard, 1)
        logger.warning(
            "batch send failed, retrying",
            extra={
                "fields": {
                    "shard": shard,
                    "seq": oldest[0].seq if oldest else 0,
                    "code": code,
                    "detail": detail,
                    "retry_in_s": backoff_s,
                }
            },
        )
        await self._clients.wait_changed(backoff_s * (0.5 + random.random()))
        return min(backoff_s * 2, 2.0)

    async def _send(self, send: SerializedApply, batch: OutboxBatch) -> None:
        first_send, batch.sent = not batch.sent, True
        try:
            with SEND_SECONDS.time():
                response: counter_pb2.ApplyBatchResponse = await send(
                    batch.payload, timeout=self._timeout_s
                )
        except aio.AioRpcError as exc:
            SEND_ERRORS.labels(shard=str(batch.shard), code=exc.code().name).inc()
            raise
        if response.duplicate and first_send:
            # The shard already committed a batch with this id that we never sent: the
            # events of this one would be dropped. Never expected; loudly reported.
            SEQUENCE_REUSE.labels(shard=str(batch.shard)).inc()
            logger.error(
                "shard reports a never-sent batch as duplicate (sequence reuse)",
                extra={"fields": {"shard": batch.shard, "seq": batch.seq}},
            )

    def wake_all(self) -> None:
        for event in self._wakeups.values():
            event.set()

    async def final_flush(self) -> None:
        """Cuts what is left so the senders can deliver it before exit."""
        self._stopping = True
        await self._journal.cut()
        self.wake_all()
