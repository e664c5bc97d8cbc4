"""Warms segment n+1 of a rendition when a player asks for segment n.

A sequential viewer then finds the next segment cached instead of waiting on the origin.
Bounded on every side: at most `queue_size` segments wait, `workers` fetch at once, and an
offer is skipped when the segment is cached, already fetching or already queued, or when
the rendition playlist (if cached) shows the reel has no such segment. A full queue drops
the offer: prefetch is an optimisation, never a reason to hold memory or delay a request.
"""

from __future__ import annotations

import asyncio
import logging

from prometheus_client import Counter

from edge.errors import MediaError
from edge.hls_names import HlsFileKind, HlsObject
from edge.segment_cache import SegmentCache

logger = logging.getLogger(__name__)

PREFETCH_OFFERS = Counter(
    "edge_prefetch_offers_total",
    "Next-segment prefetch offers by outcome (queued, cached, in_flight, queued_already, "
    "past_end, queue_full)",
    ["outcome"],
)
PREFETCHES = Counter("edge_prefetches_total", "Prefetch fetches by result", ["result"])

Key = tuple[int, str]


class Prefetcher:
    def __init__(self, cache: SegmentCache, queue_size: int) -> None:
        self._cache = cache
        self._queue: asyncio.Queue[HlsObject] = asyncio.Queue(maxsize=queue_size)
        self._queued: set[Key] = set()

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
        playlist = self._cache.peek(
            HlsObject(obj.reel_id, f"{obj.rung}.m3u8", HlsFileKind.RENDITION_PLAYLIST, obj.rung)
        )
        if playlist is not None and obj.name.encode() not in playlist.body:
            return "past_end"
        try:
            self._queue.put_nowait(obj)
        except asyncio.QueueFull:
            return "queue_full"
        self._queued.add(key)
        return "queued"

    async def run_worker(self) -> None:
        """One fetching worker; the service starts `prefetch_workers` of them."""
        while True:
            obj = await self._queue.get()
            try:
                await self._cache.warm(obj)
                PREFETCHES.labels("ok").inc()
            except MediaError as exc:
                PREFETCHES.labels(type(exc).__name__).inc()
            except Exception:
                PREFETCHES.labels("bug").inc()
                logger.exception("prefetch failed", extra={"fields": {"object": obj.name}})
            finally:
                self._queued.discard((obj.reel_id, obj.name))
                self._queue.task_done()
