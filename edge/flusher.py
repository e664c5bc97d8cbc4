"""Forwarding of journaled events to the counter shards.

Every `flush_interval_s` the journal is cut into per-shard batches; one sender per shard
sends its outbox in sequence order, one batch in flight, retrying with capped exponential
backoff until the shard acknowledges (a duplicate acknowledgment counts: the shard had
committed the batch before). Only then is the batch removed from the outbox.
"""

from __future__ import annotations

import asyncio
import logging
import random

from grpc import aio
from prometheus_client import Counter, Histogram

from edge.journal import EdgeJournal
from edge.shard_clients import ShardClients
from protos import counter_pb2

logger = logging.getLogger(__name__)

BATCHES_SENT = Counter("edge_batches_acknowledged_total", "Batches acknowledged", ["shard"])
SEND_ERRORS = Counter("edge_batch_send_errors_total", "Failed batch sends", ["shard", "code"])
SEND_SECONDS = Histogram("edge_batch_send_seconds", "ApplyBatch latency")


class ShardFlusher:
    """Cuts the journal on a timer and drives one sender per shard."""

    def __init__(
        self,
        journal: EdgeJournal,
        clients: ShardClients,
        flush_interval_s: float,
        rpc_timeout_s: float,
    ) -> None:
        self._journal = journal
        self._clients = clients
        self._interval_s = flush_interval_s
        self._timeout_s = rpc_timeout_s
        self._stopping = False
        self._wakeups = {shard: asyncio.Event() for shard in range(len(clients.stubs))}

    async def run_cutter(self) -> None:
        while not self._stopping:
            await asyncio.sleep(self._interval_s)
            if await self._journal.cut():
                for event in self._wakeups.values():
                    event.set()

    async def run_sender(self, shard: int) -> None:
        stub = self._clients.stubs[shard]
        wakeup = self._wakeups[shard]
        wakeup.set()
        backoff_s = 0.05
        while True:
            batch = self._journal.oldest(shard)
            if batch is None:
                if self._stopping:
                    return
                wakeup.clear()
                await wakeup.wait()
                continue
            request = counter_pb2.ApplyBatchRequest.FromString(batch.payload)
            try:
                with SEND_SECONDS.time():
                    await stub.ApplyBatch(request, timeout=self._timeout_s)
            except aio.AioRpcError as exc:
                SEND_ERRORS.labels(shard=str(shard), code=exc.code().name).inc()
                if self._stopping and backoff_s >= 1.0:
                    logger.warning(
                        "shard unreachable at shutdown; batches stay in the outbox",
                        extra={"fields": {"shard": shard}},
                    )
                    return
                logger.warning(
                    "batch send failed, retrying",
                    extra={
                        "fields": {
                            "shard": shard,
                            "seq": batch.seq,
                            "code": exc.code().name,
                            "detail": exc.details(),
                            "retry_in_s": backoff_s,
                        }
                    },
                )
                await asyncio.sleep(backoff_s * (0.5 + random.random()))
                backoff_s = min(backoff_s * 2, 2.0)
                continue
            backoff_s = 0.05
            BATCHES_SENT.labels(shard=str(shard)).inc()
            await self._journal.acknowledge(batch)

    def wake_all(self) -> None:
        for event in self._wakeups.values():
            event.set()

    async def final_flush(self) -> None:
        """Cuts what is left so the senders can deliver it before exit."""
        self._stopping = True
        await self._journal.cut()
        self.wake_all()
