"""What simulated viewers do, as draws from a seeded random source: which reel comes next
(Zipf(1) popularity over the catalog), how long it is watched, whether it is liked.

Pure code. The watch-time mix follows short-video habits: a quarter of reels are swiped
away within 2.5 s (below the 3 s view threshold: the edge refuses those views, by design),
the rest watched for part of their length, a third of them to the end.
"""

from __future__ import annotations

import bisect
import itertools
import random
from collections.abc import Sequence
from dataclasses import dataclass

SWIPE_SHARE = 0.25
FULL_WATCH_SHARE = 0.25


class ReelPicker:
    """Draws reel ids with Zipf(exponent) popularity: the k-th id has weight 1 / k^s."""

    def __init__(self, reel_ids: Sequence[int], exponent: float = 1.0) -> None:
        if not reel_ids:
            raise ValueError("no reels to pick from")
        self._reel_ids = reel_ids
        self._cumulative = list(
            itertools.accumulate(1.0 / (rank**exponent) for rank in range(1, len(reel_ids) + 1))
        )

    def pick(self, rng: random.Random) -> int:
        point = rng.random() * self._cumulative[-1]
        index = min(bisect.bisect_left(self._cumulative, point), len(self._reel_ids) - 1)
        return self._reel_ids[index]

    @property
    def hottest(self) -> int:
        return self._reel_ids[0]


@dataclass(frozen=True)
class WatchPlan:
    """How one viewer treats one reel."""

    watch_ms: int
    like: bool


def plan_watch(rng: random.Random, duration_ms: int, like_probability: float) -> WatchPlan:
    """A watch time for a reel of `duration_ms`, and whether the viewer likes it."""
    draw = rng.random()
    if draw < SWIPE_SHARE:
        watch_ms = rng.randint(300, min(2_500, duration_ms))
    elif draw < SWIPE_SHARE + FULL_WATCH_SHARE:
        watch_ms = duration_ms
    else:
        watch_ms = int(duration_ms * rng.uniform(0.3, 1.0))
    liked = watch_ms >= min(3_000, duration_ms // 2) and rng.random() < like_probability
    return WatchPlan(watch_ms, liked)
