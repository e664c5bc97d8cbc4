"""The reels of this Locust process that have HLS media, for player viewers.

Filled from `media_reel_ids` when given, else by the media seeding at test start
(`loadtest/media_seed.py`) and by every reel a `Creator` sees published. Reels are drawn
with Zipf(1) popularity in the order they arrived: the seeded reels stay the hottest, fresh
uploads are the long tail (cold at the edge, as new reels are).

No Locust import; the locks are threading's, which Locust's gevent patch turns into
greenlet-aware ones.
"""

from __future__ import annotations

import random
import threading
from collections.abc import Iterable

from loadtest.viewer_behaviour import ReelPicker


class PlayableReels:
    """A growing set of reel ids with media; `wait_any` blocks until there is one."""

    def __init__(self, reel_ids: Iterable[int] = ()) -> None:
        self._ids: list[int] = []
        self._known: set[int] = set()
        self._picker: ReelPicker | None = None
        self._lock = threading.Lock()
        self._not_empty = threading.Event()
        for reel_id in reel_ids:
            self.add(reel_id)

    def add(self, reel_id: int) -> None:
        with self._lock:
            if reel_id in self._known:
                return
            self._known.add(reel_id)
            self._ids.append(reel_id)
            self._picker = None
        self._not_empty.set()

    def __len__(self) -> int:
        return len(self._ids)

    def __contains__(self, reel_id: object) -> bool:
        return reel_id in self._known

    def wait_any(self, timeout_s: float) -> bool:
        """True once at least one reel is playable (False after `timeout_s` without)."""
        return self._not_empty.wait(timeout_s)

    def pick(self, rng: random.Random) -> int | None:
        """A reel drawn with Zipf(1) popularity, or None while there is none."""
        with self._lock:
            if not self._ids:
                return None
            if self._picker is None:
                self._picker = ReelPicker(tuple(self._ids))
            return self._picker.pick(rng)
