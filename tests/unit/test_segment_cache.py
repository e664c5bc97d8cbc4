"""The segment cache's behaviour around the origin: coalescing, errors, staleness, purges,
bounds and prefetch, against an in-memory fake origin."""

from __future__ import annotations

import asyncio
import contextlib

import pytest

from edge.errors import EdgeOverloaded, MediaError, MediaNotFound, OriginUnavailable, ReelRemoved
from edge.hls_names import HlsObject, parse_hls_object
from edge.media_object import MediaObject, strong_etag
from edge.prefetcher import Prefetcher
from edge.segment_cache import SegmentCache


class FakeOrigin:
    """Serves `files`; each fetch waits for `gate` (when set) and is counted."""

    def __init__(self, files: dict[tuple[int, str], bytes]) -> None:
        self.files = files
        self.fetches: list[tuple[int, str]] = []
        self.gate: asyncio.Event | None = None
        self.errors: list[MediaError] = []

    async def fetch(self, obj: HlsObject) -> MediaObject:
        self.fetches.append((obj.reel_id, obj.name))
        if self.gate is not None:
            await self.gate.wait()
        if self.errors:
            raise self.errors.pop(0)
        body = self.files.get((obj.reel_id, obj.name))
        if body is None:
            raise MediaNotFound(obj.name)
        return MediaObject(body, obj.content_type, strong_etag(body))

    async def close(self) -> None:
        return None


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def hls(reel_id: int, name: str) -> HlsObject:
    obj = parse_hls_object(str(reel_id), name)
    assert obj is not None
    return obj


def make_cache(
    origin: FakeOrigin, capacity: int = 10_000, clock: FakeClock | None = None, fetches: int = 256
) -> SegmentCache:
    return SegmentCache(
        origin,
        capacity,
        playlist_ttl_s=2.0,
        playlist_stale_s=30.0,
        max_fetches=fetches,
        clock=clock or FakeClock(),
    )


async def test_a_thousand_concurrent_misses_make_one_origin_fetch() -> None:
    origin = FakeOrigin({(1, "720p_001.m4s"): b"x" * 500})
    origin.gate = asyncio.Event()
    cache = make_cache(origin)
    requests = [asyncio.create_task(cache.get(hls(1, "720p_001.m4s"))) for _ in range(1000)]
    await asyncio.sleep(0)
    origin.gate.set()
    bodies = await asyncio.gather(*requests)
    assert origin.fetches == [(1, "720p_001.m4s")]
    assert all(media.body == b"x" * 500 for media in bodies)
    assert cache.stats.origin_fetches == 1
    assert cache.stats.coalesced_waits == 999
    await cache.get(hls(1, "720p_001.m4s"))
    assert len(origin.fetches) == 1


async def test_an_error_reaches_every_waiter_and_is_not_cached() -> None:
    origin = FakeOrigin({(1, "720p_001.m4s"): b"data"})
    origin.gate = asyncio.Event()
    origin.errors = [OriginUnavailable("down")]
    cache = make_cache(origin)
    requests = [asyncio.create_task(cache.get(hls(1, "720p_001.m4s"))) for _ in range(50)]
    await asyncio.sleep(0)
    origin.gate.set()
    results = await asyncio.gather(*requests, return_exceptions=True)
    assert all(isinstance(result, OriginUnavailable) for result in results)
    assert len(origin.fetches) == 1
    assert (await cache.get(hls(1, "720p_001.m4s"))).body == b"data"
    assert len(origin.fetches) == 2


async def test_a_cancelled_first_requester_does_not_cancel_the_fetch_for_others() -> None:
    origin = FakeOrigin({(1, "720p_001.m4s"): b"data"})
    origin.gate = asyncio.Event()
    cache = make_cache(origin)
    first = asyncio.create_task(cache.get(hls(1, "720p_001.m4s")))
    second = asyncio.create_task(cache.get(hls(1, "720p_001.m4s")))
    await asyncio.sleep(0)
    first.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await first
    origin.gate.set()
    assert (await second).body == b"data"
    assert hls(1, "720p_001.m4s") in cache


async def test_purge_removes_every_file_of_the_reel_and_nothing_else() -> None:
    files = {(1, f"720p_00{i}.m4s"): b"a" * 100 for i in range(5)}
    files[(2, "720p_000.m4s")] = b"b" * 100
    origin = FakeOrigin(files)
    cache = make_cache(origin)
    for reel_id, name in files:
        await cache.get(hls(reel_id, name))
    result = cache.purge_reel(1)
    assert (result.objects, result.bytes) == (5, 500)
    assert cache.size_bytes == 100
    assert hls(2, "720p_000.m4s") in cache
    assert hls(1, "720p_000.m4s") not in cache
    assert cache.purge_reel(1).objects == 0


async def test_a_fetch_in_flight_during_a_purge_is_not_stored() -> None:
    origin = FakeOrigin({(1, "720p_001.m4s"): b"old"})
    origin.gate = asyncio.Event()
    cache = make_cache(origin)
    request = asyncio.create_task(cache.get(hls(1, "720p_001.m4s")))
    await asyncio.sleep(0)
    cache.purge_reel(1)
    origin.gate.set()
    await request
    assert hls(1, "720p_001.m4s") not in cache


async def test_a_removed_reel_found_by_a_fetch_is_purged() -> None:
    origin = FakeOrigin({(1, "720p_001.m4s"): b"seg", (1, "720p.m3u8"): b"#EXTM3U\n"})
    cache = make_cache(origin)
    await cache.get(hls(1, "720p_001.m4s"))
    origin.errors = [ReelRemoved("removed")]
    with pytest.raises(ReelRemoved):
        await cache.get(hls(1, "master.m3u8"))
    assert hls(1, "720p_001.m4s") not in cache


async def test_a_stale_playlist_is_served_while_one_fetch_revalidates() -> None:
    clock = FakeClock()
    origin = FakeOrigin({(1, "720p.m3u8"): b"v1"})
    cache = make_cache(origin, clock=clock)
    assert (await cache.get(hls(1, "720p.m3u8"))).body == b"v1"
    clock.now += 1.0
    assert (await cache.get(hls(1, "720p.m3u8"))).body == b"v1"
    assert len(origin.fetches) == 1  # fresh
    origin.files[(1, "720p.m3u8")] = b"v2"
    origin.gate = asyncio.Event()
    clock.now += 5.0
    stale = [await cache.get(hls(1, "720p.m3u8")) for _ in range(10)]
    assert {media.body for media in stale} == {b"v1"}
    assert cache.stats.origin_fetches == 2  # one revalidation for ten stale hits
    origin.gate.set()
    for _ in range(100):
        await asyncio.sleep(0)
        if not cache.is_in_flight(hls(1, "720p.m3u8")):
            break
    assert (await cache.get(hls(1, "720p.m3u8"))).body == b"v2"


async def test_a_too_old_playlist_is_still_served_when_the_origin_is_down() -> None:
    clock = FakeClock()
    origin = FakeOrigin({(1, "720p.m3u8"): b"v1"})
    cache = make_cache(origin, clock=clock)
    await cache.get(hls(1, "720p.m3u8"))
    clock.now += 3600
    origin.errors = [OriginUnavailable("down")]
    assert (await cache.get(hls(1, "720p.m3u8"))).body == b"v1"


async def test_segments_never_expire() -> None:
    clock = FakeClock()
    origin = FakeOrigin({(1, "720p_001.m4s"): b"seg"})
    cache = make_cache(origin, clock=clock)
    await cache.get(hls(1, "720p_001.m4s"))
    clock.now += 10**6
    await cache.get(hls(1, "720p_001.m4s"))
    assert len(origin.fetches) == 1


async def test_the_cache_stays_within_its_byte_bound() -> None:
    files = {
        (reel, f"720p_{i:03d}.m4s"): b"z" * (100 + 37 * i)
        for reel in range(1, 30)
        for i in range(8)
    }
    origin = FakeOrigin(files)
    cache = make_cache(origin, capacity=3000)
    for reel_id, name in list(files) * 2:
        await cache.get(hls(reel_id, name))
        assert cache.size_bytes <= 3000
    assert cache.stats.evictions > 0
    assert cache.purge_reel(1).objects >= 0
    assert cache.size_bytes <= 3000


async def test_distinct_misses_beyond_the_limit_are_shed() -> None:
    origin = FakeOrigin({(1, f"720p_00{i}.m4s"): b"s" for i in range(3)})
    origin.gate = asyncio.Event()
    cache = make_cache(origin, fetches=2)
    waiting = [asyncio.create_task(cache.get(hls(1, f"720p_00{i}.m4s"))) for i in range(2)]
    await asyncio.sleep(0)
    with pytest.raises(EdgeOverloaded):
        await cache.get(hls(1, "720p_002.m4s"))
    origin.gate.set()
    await asyncio.gather(*waiting)


async def test_prefetch_warms_the_next_segment_once() -> None:
    files = {(1, f"720p_00{i}.m4s"): b"s" * 10 for i in range(3)}
    files[(1, "720p.m3u8")] = b"#EXTM3U\n720p_000.m4s\n720p_001.m4s\n720p_002.m4s\n"
    origin = FakeOrigin(files)
    cache = make_cache(origin)
    prefetcher = Prefetcher(cache, queue_size=8)
    worker = asyncio.create_task(prefetcher.run_worker())
    try:
        await cache.get(hls(1, "720p.m3u8"))
        await cache.get(hls(1, "720p_000.m4s"))
        assert prefetcher.offer_next(hls(1, "720p_000.m4s")) == "queued"
        assert prefetcher.offer_next(hls(1, "720p_000.m4s")) in ("queued_already", "in_flight")
        for _ in range(100):
            await asyncio.sleep(0)
            if hls(1, "720p_001.m4s") in cache:
                break
        assert hls(1, "720p_001.m4s") in cache
        assert prefetcher.offer_next(hls(1, "720p_000.m4s")) == "cached"
        assert prefetcher.offer_next(hls(1, "720p_002.m4s")) == "past_end"
        assert prefetcher.offer_next(hls(1, "720p_init.mp4")) == "not_a_segment"
        fetched = len(origin.fetches)
        await cache.get(hls(1, "720p_001.m4s"))
        assert len(origin.fetches) == fetched
    finally:
        worker.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await worker


async def test_a_full_prefetch_queue_drops_offers() -> None:
    origin = FakeOrigin({})
    cache = make_cache(origin)
    prefetcher = Prefetcher(cache, queue_size=1)
    assert prefetcher.offer_next(hls(1, "720p_000.m4s")) == "queued"
    assert prefetcher.offer_next(hls(2, "720p_000.m4s")) == "queue_full"


async def test_a_failed_prefetch_is_not_retried_at_once() -> None:
    origin = FakeOrigin({})
    cache = make_cache(origin)
    prefetcher = Prefetcher(cache, queue_size=8)
    worker = asyncio.create_task(prefetcher.run_worker())
    try:
        assert prefetcher.offer_next(hls(1, "720p_000.m4s")) == "queued"
        for _ in range(100):
            await asyncio.sleep(0)
            if origin.fetches:
                break
        for _ in range(10):
            await asyncio.sleep(0)
        assert prefetcher.offer_next(hls(1, "720p_000.m4s")) == "failed_recently"
        assert len(origin.fetches) == 1
    finally:
        worker.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await worker


async def test_a_cached_segment_is_had_without_waiting_and_counted_like_a_hit() -> None:
    origin = FakeOrigin({(1, "360p_000.m4s"): b"seg", (1, "360p.m3u8"): b"#EXTM3U"})
    cache = make_cache(origin)
    segment, playlist = hls(1, "360p_000.m4s"), hls(1, "360p.m3u8")
    assert cache.cached_segment(segment) is None  # not cached yet: `get` fetches it
    assert cache.stats.misses == 0
    await cache.get(segment)
    await cache.get(playlist)
    media = cache.cached_segment(segment)
    assert media is not None
    assert media.body == b"seg"
    assert cache.stats.hits == 1
    assert cache.cached_segment(playlist) is None  # playlists age: `get` decides
    assert cache.stats.hits == 1
    assert origin.fetches == [(1, "360p_000.m4s"), (1, "360p.m3u8")]
