"""One roll-up write budget for every shard a counter process hosts.

A process serving eight logical shards must not write eight times the roll-ups of one
serving a single shard: Cassandra's load would grow with the number of logical shards, not
with the traffic (with a budget per shard, 8 logical shards on 2 processes were allowed 4x
the roll-up writes of 2, on the same Cassandra that commits their batches). Shards reserve
their slots on one virtual clock, in arrival order, so the process's writes stay at
`reels_per_s` however many shards snapshot at once.
"""

from __future__ import annotations

import asyncio


class WritePacer:
    """Paces writes to at most `reels_per_s` on average, shared by every caller."""

    def __init__(self, reels_per_s: float) -> None:
        if reels_per_s <= 0:
            raise ValueError("reels_per_s must be positive")
        self._seconds_per_reel = 1.0 / reels_per_s
        self._free_at = 0.0

    def reserve(self, reels: int) -> float:
        """Reserves the next slot for `reels` writes; returns seconds until it starts."""
        now = asyncio.get_running_loop().time()
        start = max(now, self._free_at)
        self._free_at = start + reels * self._seconds_per_reel
        return start - now

    async def wait_for(self, reels: int) -> None:
        """Returns when `reels` more writes fit in the budget."""
        delay_s = self.reserve(reels)
        if delay_s > 0:
            await asyncio.sleep(delay_s)
