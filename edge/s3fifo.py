"""S3-FIFO eviction, bounded in bytes (Yang et al., "FIFO queues are all you need for cache
eviction", SOSP 2023). Pure: no I/O, no clock, no asyncio.

Three FIFO queues:
- S, the small queue (10% of the bytes): every new object enters here. Most objects of a
  CDN trace are requested once ("one-hit wonders"); S lets them leave quickly without
  pushing popular objects out.
- M, the main queue (the rest): objects requested again while in S move here when they
  reach S's tail. M is a FIFO with reinsertion (a 2-bit clock): an object requested since
  it last passed the tail is reinserted at the head with its counter decremented.
- G, the ghost queue: keys (no data) of objects S dropped, bounded by M's size in bytes.
  A miss on a ghost key goes straight to M: it was requested twice within a short window.

Each object keeps a frequency counter capped at 3; a hit only increments it, so hits never
move objects (the property that makes FIFO caches cheap). Invariant after every call:
`size_bytes <= capacity_bytes`. Objects larger than the capacity are not admitted.

Speculative inserts (prefetch) start one step below zero, so the first real request counts
as the insertion rather than as a second request; otherwise every prefetched segment would
look popular and reach M.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Hashable, Iterator
from typing import Generic, TypeVar

K = TypeVar("K", bound=Hashable)
V = TypeVar("V")

MAX_FREQUENCY = 3


class _Entry(Generic[V]):
    __slots__ = ("freq", "in_main", "size", "value")

    def __init__(self, value: V, size: int, freq: int) -> None:
        self.value = value
        self.size = size
        self.freq = freq
        self.in_main = False


class S3FifoCache(Generic[K, V]):
    """A map from keys to values of known byte sizes with S3-FIFO eviction."""

    def __init__(self, capacity_bytes: int, small_fraction: float = 0.1) -> None:
        if capacity_bytes < 1:
            raise ValueError("capacity_bytes must be positive")
        if not 0.0 < small_fraction < 1.0:
            raise ValueError("small_fraction must be in (0, 1)")
        self.capacity_bytes = capacity_bytes
        self._small_target = max(1, int(capacity_bytes * small_fraction))
        self._ghost_limit = capacity_bytes - self._small_target
        self._entries: dict[K, _Entry[V]] = {}
        self._small: OrderedDict[K, None] = OrderedDict()
        self._main: OrderedDict[K, None] = OrderedDict()
        self._ghost: OrderedDict[K, int] = OrderedDict()
        self._small_bytes = 0
        self._main_bytes = 0
        self._ghost_bytes = 0

    @property
    def size_bytes(self) -> int:
        return self._small_bytes + self._main_bytes

    def __len__(self) -> int:
        return len(self._entries)

    def __contains__(self, key: object) -> bool:
        return key in self._entries

    def keys(self) -> Iterator[K]:
        return iter(list(self._entries))

    def get(self, key: K) -> V | None:
        """The value of `key`, counting the request; None on a miss."""
        entry = self._entries.get(key)
        if entry is None:
            return None
        if entry.freq < MAX_FREQUENCY:
            entry.freq += 1
        return entry.value

    def peek(self, key: K) -> V | None:
        """The value of `key` without counting a request."""
        entry = self._entries.get(key)
        return None if entry is None else entry.value

    def put(self, key: K, value: V, size_bytes: int, *, speculative: bool = False) -> list[K]:
        """Stores `value` under `key` (replacing an older value) and returns the keys
        evicted to make room. An object larger than the whole cache is not stored."""
        if size_bytes < 0:
            raise ValueError("size_bytes must not be negative")
        old = self._entries.get(key)
        if old is not None:
            # A replacement (a revalidated playlist) keeps its place and its history.
            self._resize(old, size_bytes)
            old.value = value
            return self._evict()
        if size_bytes > self.capacity_bytes:
            return []
        entry: _Entry[V] = _Entry(value, size_bytes, -1 if speculative else 0)
        self._entries[key] = entry
        ghost_size = self._ghost.pop(key, None)
        if ghost_size is not None:
            self._ghost_bytes -= ghost_size
            self._insert_main(key, entry)
        else:
            self._small[key] = None
            self._small_bytes += size_bytes
        return self._evict()

    def remove(self, key: K) -> int:
        """Drops `key` (and its ghost); returns the bytes freed."""
        if key in self._ghost:
            self._ghost_bytes -= self._ghost.pop(key)
        entry = self._entries.pop(key, None)
        if entry is None:
            return 0
        if entry.in_main:
            del self._main[key]
            self._main_bytes -= entry.size
        else:
            del self._small[key]
            self._small_bytes -= entry.size
        return entry.size

    def _resize(self, entry: _Entry[V], size_bytes: int) -> None:
        delta = size_bytes - entry.size
        entry.size = size_bytes
        if entry.in_main:
            self._main_bytes += delta
        else:
            self._small_bytes += delta

    def _insert_main(self, key: K, entry: _Entry[V]) -> None:
        entry.in_main = True
        entry.freq = 0
        self._main[key] = None
        self._main_bytes += entry.size

    def _evict(self) -> list[K]:
        evicted: list[K] = []
        while self.size_bytes > self.capacity_bytes:
            if self._small_bytes > self._small_target or not self._main:
                victim = self._evict_small()
            else:
                victim = self._evict_main()
            if victim is not None:
                evicted.append(victim)
        return evicted

    def _evict_small(self) -> K | None:
        key, _ = self._small.popitem(last=False)
        entry = self._entries[key]
        self._small_bytes -= entry.size
        if entry.freq > 0:
            self._insert_main(key, entry)
            return None
        del self._entries[key]
        self._ghost[key] = entry.size
        self._ghost_bytes += entry.size
        while self._ghost_bytes > self._ghost_limit and self._ghost:
            _, size = self._ghost.popitem(last=False)
            self._ghost_bytes -= size
        return key

    def _evict_main(self) -> K | None:
        key, _ = self._main.popitem(last=False)
        entry = self._entries[key]
        if entry.freq > 0:
            entry.freq -= 1
            self._main[key] = None  # reinserted at the head
            return None
        self._main_bytes -= entry.size
        del self._entries[key]
        return key
