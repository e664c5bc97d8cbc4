"""Warms segment n+1 of a rendition when a player asks for segment n.

A sequential viewer then finds the next segment cached instead of waiting on the origin.
Bounded on every side: at most `queue_size` segments wait, `workers` fetch at once, and an
offer is skipped when the segment is cached, already fetching or already queued, or when
the rendition playlist (if cached) shows the reel has no such segment, or when a prefetch
of it failed within `FAILURE_MEMORY_S` (a reel's last segment would otherwise send one
futile origin call per request of it). A full queue drops the offer: prefetch is an
optimisation, never a reason to hold memory or delay a request.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import OrderedDict

from prometheus_client import Counter

from edge.errors import MediaError
from edge.hls_names import HlsFileKind, HlsObject
from edge.mapped_body import body_bytes
from edge.segment_cache import SegmentCache

logger = logging.getLogger(__name__)

PREFETCH_OFFERS = Counter(
    "edge_prefetch_offers_total",
    "Next-segment prefetch offers by outcome (queued, cached, in_flight, queued_already, "
    "failed_recently, past_end, queue_full)",
    ["outcome"],
)
PREFETCHES = Counter("edge_prefetches_total", "Prefetch fetches by result", ["result"])

Key = tuple[int, str]
FAILURE_MEMORY_S = 30.0
FAILURE_MEMORY_ENTRIES = 4096


class Prefetcher:
    def __init__(self, cache: SegmentCache, queue_size: int) -> None:
        self._cache = cache
        self._queue: asyncio.Queue[HlsObject] = asyncio.Queue(maxsize=queue_size)
        self._queued: set[Key] = set()
        self._failed: OrderedDict[Key, float] = OrderedDict()

    def offer_next(self, requested: HlsObject) -> str:
        """Queues the segment after `requested` if worth it; returns the outcome."""
        following = requested.next_segment()
        if following is None:
            return "not_a_segment"
        outcome = self._offer(following)
        PREFETCH_OFFERS.labels(outcome).inc()
        return outcome

    def _offer(self, obj: HlsObject) -> str:
        key = (obj.reel_id, obj.name)
        if obj in self._cache:
            return "cached"
        if self._cache.is_in_flight(obj):
            return "in_flight"
        if key in self._queued:
            return "queued_already"
        failed_at = self._failed.get(key)
        if failed_at is not None:
            if time.monotonic() - failed_at < FAILURE_MEMORY_S:
                return "failed_recently"
            del self._failed[key]
        playlist = self._cache.peek(
            HlsObject(obj.reel_id, f"{obj.rung}.m3u8", HlsFileKind.RENDITION_PLAYLIST, obj.rung)
        )
        if playlist is not None and obj.name.encode() not in body_bytes(playlist.body):
            return "past_end"
        try:
            self._queue.put_nowait(obj)
        except asyncio.QueueFull:
            return "queue_full"
        self._queued.add(key)
        return "queued"

    def _remember_failure(self, key: Key) -> None:
        self._failed[key] = time.monotonic()
        self._failed.move_to_end(key)
        while len(self._failed) > FAILURE_MEMORY_ENTRIES:
            self._failed.popitem(last=False)

    async def run_worker(self) -> None:
        """One fetching worker; the service starts `prefetch_workers` of them."""
        while True:
            obj = await self._queue.get()
            try:
                await self._cache.warm(obj)
                PREFETCHES.labels("ok").inc()
            except MediaError as exc:
                PREFETCHES.labels(type(exc).__name__).inc()
                self._remember_failure((obj.reel_id, obj.name))
            except Exception:
                PREFETCHES.labels("bug").inc()
                logger.exception("prefetch failed", extra={"fields": {"object": obj.name}})
            finally:
                self._queued.discard((obj.reel_id, obj.name))
                self._queue.task_done()
