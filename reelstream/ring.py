"""Consistent hashing of reel ids onto counter shards, with virtual nodes.

Every edge and every shard builds the same ring from the same shard count, so they agree on
which shard owns a reel without talking. Virtual nodes spread each shard over many arcs, so
adding a shard moves only about 1/(n+1) of the keys, taken evenly from every other shard.
"""

from __future__ import annotations

import bisect
import hashlib
import struct
from collections.abc import Iterable

DEFAULT_VNODES = 128


def _point(data: bytes) -> int:
    return int.from_bytes(hashlib.blake2b(data, digest_size=8).digest(), "big")


class ConsistentHashRing:
    """Maps keys to shard ids 0..shard_count-1."""

    def __init__(self, shard_ids: Iterable[int], vnodes: int = DEFAULT_VNODES) -> None:
        ids = sorted(set(shard_ids))
        if not ids:
            raise ValueError("a ring needs at least one shard")
        if vnodes < 1:
            raise ValueError("vnodes must be >= 1")
        points: list[tuple[int, int]] = []
        for shard in ids:
            for replica in range(vnodes):
                points.append((_point(f"shard-{shard}#{replica}".encode()), shard))
        points.sort()
        self._points = [point for point, _ in points]
        self._owners = [shard for _, shard in points]
        self.shard_ids: tuple[int, ...] = tuple(ids)

    @classmethod
    def of_size(cls, shard_count: int, vnodes: int = DEFAULT_VNODES) -> ConsistentHashRing:
        return cls(range(shard_count), vnodes)

    def shard_for(self, reel_id: int) -> int:
        """The shard owning `reel_id`: the first virtual node clockwise of its hash."""
        point = _point(struct.pack(">Q", reel_id))
        index = bisect.bisect_right(self._points, point)
        if index == len(self._points):
            index = 0
        return self._owners[index]
