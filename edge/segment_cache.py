"""The edge's cache of reel files: S3-FIFO bounded in bytes, coalesced misses, playlists
served stale while they revalidate, purge by reel.

Invariants:
- Bytes held never exceed `capacity_bytes` (the S3-FIFO store enforces it on every put).
- Coalescing (nginx's `proxy_cache_lock`): however many requests miss the same file at
  once, one origin fetch runs; every waiter gets its result or its error. The fetch is a
  task of the cache, not of the first requester, so a client that disconnects does not
  cancel it for the others. Errors are never cached as content: the next request tries
  again.
- Segments are immutable (content-addressed by the origin): cached until evicted or purged.
  Playlists are fresh for `playlist_ttl_s`; for `playlist_stale_s` after that a request is
  answered from cache while one background fetch revalidates (stale-while-revalidate), and
  if the origin is unreachable a cached playlist of any age is served (stale-if-error).
- `purge_reel` removes every cached file of a reel at once, and a fetch of that reel already
  in flight at the purge is not stored when it lands, so nothing fetched before a takedown
  survives it. A fetch that finds the reel removed purges the reel too.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from prometheus_client import Counter, Gauge

from edge.errors import EdgeOverloaded, MediaError, OriginUnavailable, ReelRemoved
from edge.hls_names import HlsObject
from edge.media_object import MediaObject, MediaSource
from edge.s3fifo import S3FifoCache

logger = logging.getLogger(__name__)

CACHE_REQUESTS = Counter(
    "edge_cache_requests_total",
    "Reel file requests by cache outcome (hit, miss, stale: served stale while revalidating, "
    "stale_if_error: served stale because the origin failed)",
    ["outcome"],
)
CACHE_HIT_BYTES = Counter("edge_cache_hit_bytes_total", "Bytes served from cache")
CACHE_BYTES = Gauge("edge_cache_bytes", "Bytes held by the segment cache")
CACHE_OBJECTS = Gauge("edge_cache_objects", "Files held by the segment cache")
CACHE_EVICTIONS = Counter("edge_cache_evictions_total", "Files evicted to stay within bounds")
CACHE_FILLS = Counter(
    "edge_cache_origin_fetches_total",
    "Origin fetches started by the cache (one per coalesced group of misses)",
    ["reason"],
)
CACHE_COALESCED = Counter(
    "edge_cache_coalesced_waits_total", "Misses that waited for a fetch already in flight"
)
CACHE_PURGED = Counter("edge_cache_purged_objects_total", "Files removed by purges")

HITS = CACHE_REQUESTS.labels("hit")
MISSES = CACHE_REQUESTS.labels("miss")
STALE_HITS = CACHE_REQUESTS.labels("stale")
STALE_IF_ERROR = CACHE_REQUESTS.labels("stale_if_error")

Key = tuple[int, str]


@dataclass(frozen=True, slots=True)
class CachedFile:
    media: MediaObject
    fetched_at: float


@dataclass
class CacheStats:
    """This instance's counts (the Prometheus counters are per process)."""

    hits: int = 0
    misses: int = 0
    stale: int = 0
    origin_fetches: int = 0
    coalesced_waits: int = 0
    evictions: int = 0
    prefetches: int = 0


@dataclass(frozen=True, slots=True)
class PurgeResult:
    objects: int
    bytes: int


@dataclass
class _Fill:
    task: asyncio.Task[MediaObject]
    doomed: bool = field(default=False)


class SegmentCache:
    """Reel files by (reel id, file name), filled from a MediaSource."""

    def __init__(
        self,
        source: MediaSource,
        capacity_bytes: int,
        playlist_ttl_s: float,
        playlist_stale_s: float,
        max_fetches: int = 256,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._source = source
        self._store: S3FifoCache[Key, CachedFile] = S3FifoCache(capacity_bytes)
        self._playlist_ttl_s = playlist_ttl_s
        self._playlist_stale_s = playlist_stale_s
        self._clock = clock
        self._max_fetches = max_fetches
        self._by_reel: dict[int, set[str]] = {}
        self._fills: dict[Key, _Fill] = {}
        self.stats = CacheStats()

    @property
    def size_bytes(self) -> int:
        return self._store.size_bytes

    @property
    def capacity_bytes(self) -> int:
        return self._store.capacity_bytes

    def __contains__(self, obj: HlsObject) -> bool:
        return (obj.reel_id, obj.name) in self._store

    def is_in_flight(self, obj: HlsObject) -> bool:
        return (obj.reel_id, obj.name) in self._fills

    def peek(self, obj: HlsObject) -> MediaObject | None:
        """The cached file, without counting a request or checking freshness."""
        cached = self._store.peek((obj.reel_id, obj.name))
        return None if cached is None else cached.media

    def cached_segment(self, obj: HlsObject) -> MediaObject | None:
        """A cached init or media segment, counted as a hit as `get` would, without a
        coroutine (the HTTP handler's hot path); None for a playlist or a segment not
        cached, which `get` then answers."""
        if obj.kind.is_playlist:
            return None
        cached = self._store.get((obj.reel_id, obj.name))
        return None if cached is None else self._hit(cached)

    async def get(self, obj: HlsObject) -> MediaObject:
        """The file `obj`, from cache or from the origin.

        Raises:
            MediaError: the origin's answer (not found, removed, not ready, unreachable).
        """
        key = (obj.reel_id, obj.name)
        cached = self._store.get(key)
        if cached is not None:
            if not obj.kind.is_playlist:
                return self._hit(cached)
            age_s = self._clock() - cached.fetched_at
            if age_s <= self._playlist_ttl_s:
                return self._hit(cached)
            if age_s <= self._playlist_ttl_s + self._playlist_stale_s:
                self.stats.stale += 1
                STALE_HITS.inc()
                with contextlib.suppress(EdgeOverloaded):
                    self._fill(obj, reason="revalidate")  # the task reports its failure
                return cached.media
        self.stats.misses += 1
        MISSES.inc()
        try:
            return await asyncio.shield(self._fill(obj, reason="miss"))
        except (OriginUnavailable, EdgeOverloaded):
            if cached is None:
                raise
            STALE_IF_ERROR.inc()
            return cached.media

    async def warm(self, obj: HlsObject) -> None:
        """Fetches `obj` into the cache unless it is there or on its way (prefetch). The
        object is stored as speculative: its first real request does not count as a reuse."""
        key = (obj.reel_id, obj.name)
        if key in self._store:
            return
        self.stats.prefetches += 1
        await asyncio.shield(self._fill(obj, reason="prefetch", speculative=True))

    def purge_reel(self, reel_id: int) -> PurgeResult:
        """Removes every cached file of `reel_id`; fetches of it in flight are not stored."""
        names = self._by_reel.pop(reel_id, set())
        freed = 0
        for name in names:
            freed += self._store.remove((reel_id, name))
        for (fill_reel, _name), fill in self._fills.items():
            if fill_reel == reel_id:
                fill.doomed = True
        CACHE_PURGED.inc(len(names))
        self._update_gauges()
        if names:
            logger.info("purged reel", extra={"fields": {"reel": reel_id, "objects": len(names)}})
        return PurgeResult(len(names), freed)

    async def close(self) -> None:
        """Cancels fetches in flight."""
        tasks = [fill.task for fill in self._fills.values()]
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        self._fills.clear()

    def _hit(self, cached: CachedFile) -> MediaObject:
        self.stats.hits += 1
        HITS.inc()
        CACHE_HIT_BYTES.inc(len(cached.media.body))
        return cached.media

    def _fill(
        self, obj: HlsObject, *, reason: str, speculative: bool = False
    ) -> asyncio.Task[MediaObject]:
        key = (obj.reel_id, obj.name)
        fill = self._fills.get(key)
        if fill is not None:
            if reason == "miss":
                self.stats.coalesced_waits += 1
                CACHE_COALESCED.inc()
            return fill.task
        if len(self._fills) >= self._max_fetches:
            raise EdgeOverloaded(f"{len(self._fills)} origin fetches in flight; retry shortly")
        self.stats.origin_fetches += 1
        CACHE_FILLS.labels(reason).inc()
        task = asyncio.create_task(
            self._fetch_and_store(obj, speculative), name=f"fill {obj.reel_id}/{obj.name}"
        )
        self._fills[key] = _Fill(task)
        task.add_done_callback(lambda done: self._fill_done(key, done))
        return task

    def _fill_done(self, key: Key, task: asyncio.Task[MediaObject]) -> None:
        fill = self._fills.get(key)
        if fill is not None and fill.task is task:
            del self._fills[key]
        if task.cancelled():
            return
        error = task.exception()  # retrieved here, so no waiter is needed to consume it
        if error is not None and not isinstance(error, MediaError):
            logger.error("fetch failed unexpectedly", exc_info=error)

    async def _fetch_and_store(self, obj: HlsObject, speculative: bool) -> MediaObject:
        key = (obj.reel_id, obj.name)
        try:
            media = await self._source.fetch(obj)
        except ReelRemoved:
            self.purge_reel(obj.reel_id)
            raise
        fill = self._fills.get(key)
        if fill is not None and fill.doomed:
            return media  # purged while in flight: answer the waiters, keep nothing
        self._store_file(key, CachedFile(media, self._clock()), speculative)
        return media

    def _store_file(self, key: Key, cached: CachedFile, speculative: bool) -> None:
        evicted = self._store.put(key, cached, len(cached.media.body), speculative=speculative)
        if key in self._store:
            self._by_reel.setdefault(key[0], set()).add(key[1])
        for reel_id, name in evicted:
            names = self._by_reel.get(reel_id)
            if names is not None:
                names.discard(name)
                if not names:
                    del self._by_reel[reel_id]
        self.stats.evictions += len(evicted)
        CACHE_EVICTIONS.inc(len(evicted))
        self._update_gauges()

    def _update_gauges(self) -> None:
        CACHE_BYTES.set(self._store.size_bytes)
        CACHE_OBJECTS.set(len(self._store))
