"""Hit ratio of the edge's segment cache on a synthetic short-video trace, against LRU and
the offline optimum (Belady), by simulation. Pure CPU, no servers.

The trace: a catalog of reels with Zipf(alpha) popularity; each view picks a reel by
popularity and a rung (most viewers on the mid rungs), then requests the init segment and
a prefix of the 2 s media segments: short-video viewers often swipe away after a segment
or two, so the number watched is geometric, capped by the reel's length. Objects are
(reel, rung, file) with sizes from the rung's bit rate. Cache size is a share of the
trace's footprint (the bytes of the distinct objects it requests), the usual convention in
cache papers; the hit ratio counted is the request hit ratio over the whole trace.

Belady here evicts the object whose next request is furthest in the future and does not
admit objects never requested again; with objects of different sizes this is the standard
approximation of the optimum (exact OPT is NP-hard), so it is an upper reference.
"""

from __future__ import annotations

import heapq
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from edge.s3fifo import S3FifoCache

# (name, average kbps, share of views): the mid rungs take most views on phones.
RUNGS = (("1080p", 4500, 0.15), ("720p", 2500, 0.40), ("480p", 1100, 0.30), ("360p", 600, 0.15))
SEGMENT_S = 2.0
INIT_BYTES = 1_000


@dataclass(frozen=True)
class TraceSettings:
    reels: int = 10_000
    views: int = 120_000
    zipf_alpha: float = 0.9
    mean_segments_watched: float = 3.0
    min_duration_s: int = 6
    max_duration_s: int = 60
    seed: int = 42


@dataclass(frozen=True)
class Trace:
    keys: np.ndarray  # int64 object ids, one per request
    sizes: np.ndarray  # int64 bytes per object id
    footprint_bytes: int


def make_trace(settings: TraceSettings) -> Trace:
    rng = np.random.default_rng(settings.seed)
    reels = settings.reels
    durations = rng.integers(settings.min_duration_s, settings.max_duration_s + 1, reels)
    segments = np.ceil(durations / SEGMENT_S).astype(np.int64)
    max_segments = int(segments.max())
    ranks = np.arange(1, reels + 1, dtype=np.float64)
    popularity = ranks**-settings.zipf_alpha
    popularity /= popularity.sum()
    # Popularity is independent of reel id order: shuffle which reel gets which rank.
    popular_reels = rng.permutation(reels)
    viewed = popular_reels[rng.choice(reels, size=settings.views, p=popularity)]
    rung_share = np.array([share for _, _, share in RUNGS])
    rungs = rng.choice(len(RUNGS), size=settings.views, p=rung_share / rung_share.sum())
    watched = rng.geometric(1.0 / settings.mean_segments_watched, size=settings.views)
    watched = np.minimum(watched, segments[viewed])
    # Object id: ((reel * rungs + rung) * (max_segments + 1) + file), file 0 = init.
    per_rung = max_segments + 1
    requests: list[np.ndarray] = []
    for view in range(settings.views):
        base = (int(viewed[view]) * len(RUNGS) + int(rungs[view])) * per_rung
        requests.append(base + np.arange(0, int(watched[view]) + 1, dtype=np.int64))
    keys = np.concatenate(requests)
    sizes_by_rung = np.array([kbps * 1000 / 8 * SEGMENT_S for _, kbps, _ in RUNGS])
    object_count = reels * len(RUNGS) * per_rung
    jitter = rng.uniform(0.6, 1.4, size=object_count)  # scene complexity under capped VBR
    rung_of = (np.arange(object_count) // per_rung) % len(RUNGS)
    sizes = (sizes_by_rung[rung_of] * jitter).astype(np.int64)
    sizes[np.arange(object_count) % per_rung == 0] = INIT_BYTES
    distinct = np.unique(keys)
    return Trace(keys, sizes, int(sizes[distinct].sum()))


def hits_s3fifo(trace: Trace, capacity: int) -> int:
    cache: S3FifoCache[int, None] = S3FifoCache(capacity)
    sizes = trace.sizes
    hits = 0
    for key in trace.keys.tolist():
        if key in cache:
            cache.get(key)
            hits += 1
        else:
            cache.put(key, None, int(sizes[key]))
    return hits


def hits_lru(trace: Trace, capacity: int) -> int:
    cache: OrderedDict[int, int] = OrderedDict()
    sizes = trace.sizes
    used = hits = 0
    for key in trace.keys.tolist():
        if key in cache:
            cache.move_to_end(key)
            hits += 1
            continue
        size = int(sizes[key])
        if size > capacity:
            continue
        cache[key] = size
        used += size
        while used > capacity:
            _, evicted = cache.popitem(last=False)
            used -= evicted
    return hits


def hits_belady(trace: Trace, capacity: int) -> int:
    keys = trace.keys.tolist()
    never = len(keys)
    next_use = [never] * len(keys)
    last_seen: dict[int, int] = {}
    for position in range(len(keys) - 1, -1, -1):
        key = keys[position]
        next_use[position] = last_seen.get(key, never)
        last_seen[key] = position
    sizes = trace.sizes
    cached: dict[int, int] = {}  # key -> its next use
    furthest: list[tuple[int, int]] = []  # (-next use, key), stale entries skipped
    used = hits = 0
    for position, key in enumerate(keys):
        upcoming = next_use[position]
        if key in cached:
            hits += 1
        elif upcoming == never or int(sizes[key]) > capacity:
            continue  # never requested again: not worth a byte
        else:
            used += int(sizes[key])
        cached[key] = upcoming
        heapq.heappush(furthest, (-upcoming, key))
        while used > capacity:
            negative_use, victim = heapq.heappop(furthest)
            if cached.get(victim) != -negative_use:
                continue
            del cached[victim]
            used -= int(sizes[victim])
        if upcoming == never and key in cached:
            del cached[key]
            used -= int(sizes[key])
    return hits


POLICIES: dict[str, Callable[[Trace, int], int]] = {
    "s3fifo": hits_s3fifo,
    "lru": hits_lru,
    "belady": hits_belady,
}


def hit_ratios(trace: Trace, share: float) -> dict[str, float]:
    """Request hit ratio of each policy with a cache of `share` of the footprint."""
    capacity = max(1, int(trace.footprint_bytes * share))
    requests = len(trace.keys)
    return {name: policy(trace, capacity) / requests for name, policy in POLICIES.items()}
