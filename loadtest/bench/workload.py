"""The deterministic event generator every scenario of the counting benchmark sends.

Events are drawn once, up front, with numpy: reels by Zipf(1.0) popularity over 1..N (reel id
= popularity rank), users uniformly over 1..U, 95% views watched 3-15 s (all above the 3 s
view threshold) and 5% likes/unlikes. They are serialized into a pool of `EventBatch` bytes
that the drivers send cyclically, so no scenario spends CPU on generation while measured.

Two choices keep the pipeline's final counts predictable, so they can be checked exactly:

- Batches are reused, so (user, reel) view pairs repeat; the edge's 30 s view-dedupe window
  would reject the repeats depending on timing. The pipeline run disables the window
  (REELSTREAM_EDGE_VIEW_DEDUPE_WINDOW_S=0); then every view in an acknowledged batch counts.
  (Under Zipf(1.0) no pool could avoid repeats: reel 1 draws ~7% of all events from only
  100,000 users.)
- Likes are last-writer-wins registers ordered by client timestamp, and `client_ts_ms` is
  left empty (the edge stamps its own clock). Each (user, reel) pair therefore only ever gets
  one kind, LIKE when user + reel is even and UNLIKE otherwise: the final like count of a reel
  is then the number of distinct users that sent it a LIKE, whatever the order.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from loadtest.bench.settings import BenchSettings
from protos import common_pb2

VIEW = common_pb2.EVENT_KIND_VIEW
LIKE = common_pb2.EVENT_KIND_LIKE
UNLIKE = common_pb2.EVENT_KIND_UNLIKE
VIEW_THRESHOLD_MS = 3_000
PAIR_SHIFT = 32
HOT_REEL = 1

IntArray = npt.NDArray[np.int64]


@dataclass(frozen=True)
class EventColumns:
    """Columns of many events (entry i of each describes event i)."""

    reel_ids: IntArray
    user_ids: IntArray
    kinds: IntArray
    watch_ms: IntArray


@dataclass(frozen=True)
class BatchPool:
    """Pre-serialized batches plus what each one must change in the sampled reels' counts."""

    name: str
    payloads: list[bytes]
    accepted: IntArray
    """Events of batch i that the edge must accept (counted views, likes and unlikes)."""
    sample_reels: IntArray
    sample_views: IntArray
    """Shape (batches, sample): views batch i adds to sample reel j."""
    sample_like_pairs: list[IntArray]
    """Per batch: (sample index << 32 | user) of every LIKE on a sample reel."""

    @property
    def events_per_batch(self) -> int:
        return int(self.accepted.max())

    def expected_views(self, sends: IntArray) -> IntArray:
        """Views per sample reel after batch i was applied `sends[i]` times."""
        return sends @ self.sample_views

    def like_pairs(self, sends: IntArray) -> IntArray:
        """Distinct (sample index, user) LIKE pairs of the batches sent at least once."""
        chosen = [self.sample_like_pairs[i] for i in np.flatnonzero(sends)]
        if not chosen:
            return np.zeros(0, dtype=np.int64)
        return np.unique(np.concatenate(chosen))


def zipf_cdf(reels: int, exponent: float = 1.0) -> npt.NDArray[np.float64]:
    """Cumulative popularity of ranks 1..reels under Zipf(exponent)."""
    weights = 1.0 / np.arange(1, reels + 1, dtype=np.float64) ** exponent
    cdf = np.cumsum(weights)
    cdf /= cdf[-1]
    return cdf


def draw_events(
    settings: BenchSettings, count: int, hot_fraction: float, rng: np.random.Generator
) -> EventColumns:
    """`count` events of the workload; `hot_fraction` of them on reel 1 (0 for spread)."""
    cdf = zipf_cdf(settings.reels)
    reels = np.searchsorted(cdf, rng.random(count), side="right").astype(np.int64) + 1
    np.minimum(reels, settings.reels, out=reels)
    if hot_fraction > 0:
        reels[rng.random(count) < hot_fraction] = HOT_REEL
    users = rng.integers(1, settings.users + 1, size=count, dtype=np.int64)
    is_like = rng.random(count) < settings.like_fraction
    like_kind = np.where((reels + users) % 2 == 0, LIKE, UNLIKE)
    kinds = np.where(is_like, like_kind, VIEW).astype(np.int64)
    watch = rng.integers(3_000, 15_001, size=count, dtype=np.int64)
    watch[is_like] = 0
    return EventColumns(reels, users, kinds, watch)


def sample_reel_ids(settings: BenchSettings, rng: np.random.Generator) -> IntArray:
    """The reels checked for exactness: the 50 most popular and a random spread of others."""
    top = np.arange(1, min(50, settings.reels) + 1, dtype=np.int64)
    rest = max(0, settings.sample_reels - len(top))
    others = rng.choice(np.arange(len(top) + 1, settings.reels + 1), size=rest, replace=False)
    return np.sort(np.concatenate([top, others.astype(np.int64)]))


def serialize(columns: EventColumns, start: int, stop: int) -> bytes:
    batch = common_pb2.EventBatch(
        reel_ids=columns.reel_ids[start:stop].tolist(),
        user_ids=columns.user_ids[start:stop].tolist(),
        kinds=columns.kinds[start:stop].tolist(),
        watch_ms=columns.watch_ms[start:stop].tolist(),
    )
    return batch.SerializeToString()


def build_pool(
    settings: BenchSettings, name: str, hot_fraction: float, sample_reels: IntArray, seed: int
) -> BatchPool:
    """Draws and serializes `settings.pool_batches` batches of `settings.batch_events`."""
    rng = np.random.default_rng(seed)
    size = settings.batch_events
    columns = draw_events(settings, settings.pool_batches * size, hot_fraction, rng)
    counted = (columns.kinds != VIEW) | (columns.watch_ms >= VIEW_THRESHOLD_MS)
    slot_of_reel = np.full(settings.reels + 1, -1, dtype=np.int64)
    slot_of_reel[sample_reels] = np.arange(len(sample_reels))
    slots = slot_of_reel[columns.reel_ids]
    payloads: list[bytes] = []
    accepted = np.zeros(settings.pool_batches, dtype=np.int64)
    views = np.zeros((settings.pool_batches, len(sample_reels)), dtype=np.int64)
    like_pairs: list[IntArray] = []
    for index in range(settings.pool_batches):
        start, stop = index * size, (index + 1) * size
        payloads.append(serialize(columns, start, stop))
        accepted[index] = int(counted[start:stop].sum())
        batch_slots = slots[start:stop]
        kinds = columns.kinds[start:stop]
        is_view = (batch_slots >= 0) & (kinds == VIEW) & counted[start:stop]
        views[index] = np.bincount(batch_slots[is_view], minlength=len(sample_reels))
        is_like = (batch_slots >= 0) & (kinds == LIKE)
        users = columns.user_ids[start:stop][is_like]
        like_pairs.append(np.unique((batch_slots[is_like] << PAIR_SHIFT) | users))
    return BatchPool(name, payloads, accepted, sample_reels, views, like_pairs)


def build_pools(settings: BenchSettings) -> tuple[BatchPool, BatchPool]:
    """The spread Zipf pool and the hot-key pool (same sample reels, different draws)."""
    sample = sample_reel_ids(settings, np.random.default_rng(settings.seed))
    spread = build_pool(settings, "zipf", 0.0, sample, settings.seed + 1)
    hot = build_pool(settings, "hot-key", settings.hot_fraction, sample, settings.seed + 2)
    return spread, hot
