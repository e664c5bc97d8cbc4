"""Consistent hashing of reel ids onto counter shards, with virtual nodes.

Every edge and every shard builds the same ring from the same shard count, so they agree on
which shard owns a reel without talking. Virtual nodes spread each shard over many arcs, so
adding a shard moves only about 1/(n+1) of the keys, taken evenly from every other shard.
Keys are placed with the splitmix64 finaliser, which numpy evaluates for a whole column at
once (`shards_for`), so routing a batch costs a few vector operations, not a hash per event.
"""

from __future__ import annotations

import bisect
from collections.abc import Iterable

import numpy as np
import numpy.typing as npt

from reelstream.hashing import MASK64, mix64, mix64_array

DEFAULT_VNODES = 128
# Logical shards on the ring. Fixed for the life of a deployment (keys never change shard, so
# per-(edge, shard) sequences stay valid); counter processes share them out and hand them
# over when processes come and go. Every edge and counter must use the same value (the
# counters record it in the keyspace and refuse another). Every logical shard has its own
# group commit and batches, and on the 2-core reference machine fewer carried more (2 edges
# x 2 counter processes: 2 logical shards 188k-194k events/s, 4 and 8 between 76k and 178k,
# noisy; docs/architecture.md); 4 is the fewest that still spread evenly over 1, 2 and 4
# counter processes. Larger deployments set more (deploy/k8s/config.yaml: 8).
DEFAULT_SHARD_COUNT = 4


class ConsistentHashRing:
    """Maps keys to shard ids."""

    def __init__(self, shard_ids: Iterable[int], vnodes: int = DEFAULT_VNODES) -> None:
        ids = sorted(set(shard_ids))
        if not ids:
            raise ValueError("a ring needs at least one shard")
        if vnodes < 1:
            raise ValueError("vnodes must be >= 1")
        # A vnode's position depends only on (shard, replica): rings of different sizes
        # share the positions of their common shards, which is what limits key movement.
        points = sorted(
            (mix64(mix64(shard) ^ (replica * 0x632BE59BD9B4E019 & MASK64)), shard)
            for shard in ids
            for replica in range(vnodes)
        )
        self._points = [point for point, _ in points]
        self._owners = [shard for _, shard in points]
        self._points_array = np.array(self._points, dtype=np.uint64)
        self._owners_array = np.array(self._owners + self._owners[:1], dtype=np.int64)
        self.shard_ids: tuple[int, ...] = tuple(ids)

    @classmethod
    def of_size(cls, shard_count: int, vnodes: int = DEFAULT_VNODES) -> ConsistentHashRing:
        return cls(range(shard_count), vnodes)

    def shard_for(self, reel_id: int) -> int:
        """The shard owning `reel_id`: the first virtual node clockwise of its hash."""
        index = bisect.bisect_right(self._points, mix64(reel_id))
        return self._owners[index % len(self._owners)]

    def shards_for(self, reel_ids: npt.NDArray[np.uint64]) -> npt.NDArray[np.int64]:
        """`shard_for` of every element of a uint64 column."""
        index = np.searchsorted(self._points_array, mix64_array(reel_ids), side="right")
        owners: npt.NDArray[np.int64] = self._owners_array[index]
        return owners
