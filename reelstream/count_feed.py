"""Fan-out of changed reel ids to WatchCounts subscribers.

Each subscriber holds a set of changed reel ids rather than a queue of updates, so a slow
subscriber costs at most one entry per reel (bounded memory) and simply receives the latest
values when it catches up.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Iterable
from contextlib import asynccontextmanager


class TooManySubscribers(Exception):
    """The feed's subscriber limit is reached."""


class Subscription:
    """Changed reels accumulated for one subscriber: every reel, or only those followed."""

    def __init__(self, reel_ids: Iterable[int], follow_all: bool) -> None:
        self.followed: set[int] = set(reel_ids)
        self.follow_all = follow_all
        self.pending: set[int] = set()
        self.ready = asyncio.Event()

    def offer(self, changed: set[int]) -> None:
        wanted = changed if self.follow_all else changed & self.followed
        if wanted:
            self.pending |= wanted
            self.ready.set()

    def follow(self, reel_ids: Iterable[int]) -> None:
        """Adds reels; they are reported at the next push with their current values."""
        added = set(reel_ids) - self.followed
        if added:
            self.followed |= added
            self.pending |= added
            self.ready.set()

    def unfollow(self, reel_ids: Iterable[int]) -> None:
        self.followed.difference_update(reel_ids)

    async def next_changes(self, coalesce_s: float, heartbeat_s: float | None = None) -> set[int]:
        """Waits for changes, lets more arrive for `coalesce_s`, and takes them all; after
        `heartbeat_s` without changes, returns an empty set (the caller sends a heartbeat)."""
        try:
            await asyncio.wait_for(self.ready.wait(), heartbeat_s)
        except TimeoutError:
            return set()
        if coalesce_s > 0:
            await asyncio.sleep(coalesce_s)
        self.ready.clear()
        taken, self.pending = self.pending, set()
        return taken


class CountFeed:
    """Publishes changed reel ids to every current subscription."""

    def __init__(self, max_subscribers: int = 1024) -> None:
        self._subscriptions: set[Subscription] = set()
        self._max = max_subscribers

    @property
    def subscriber_count(self) -> int:
        return len(self._subscriptions)

    def publish(self, changed: set[int]) -> None:
        for subscription in self._subscriptions:
            subscription.offer(changed)

    @asynccontextmanager
    async def subscribe(
        self, reel_ids: Iterable[int], follow_all: bool = False
    ) -> AsyncIterator[Subscription]:
        if len(self._subscriptions) >= self._max:
            raise TooManySubscribers(f"{self._max} subscribers already watching")
        subscription = Subscription(reel_ids, follow_all)
        self._subscriptions.add(subscription)
        try:
            yield subscription
        finally:
            self._subscriptions.discard(subscription)
