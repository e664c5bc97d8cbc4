"""One roll-up write budget for every shard a counter process hosts.

A process serving eight logical shards must not write eight times the roll-ups of one
serving a single shard: Cassandra's load would grow with the number of logical shards, not
with the traffic (with a budget per shard, 8 logical shards on 2 processes were allowed 4x
the roll-up writes of 2, on the same Cassandra that commits their batches). Shards reserve
their slots on one virtual clock, in arrival order, so the process's writes stay at
`reels_per_s` however many shards snapshot at once.

Roll-ups yield to commits: while `busy()` says batches are waiting too long for their
commit, slots are reserved at the lower `busy_reels_per_s`. Roll-ups only bound recovery
time (the batches a new owner replays); commits are what callers and counts wait for, and
on a shared 2-core machine both draw on the same Cassandra and CPU. Under overload a
snapshot therefore takes longer and recovery replays more, instead of the drain slowing.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable

from prometheus_client import Counter

ROLLUP_REELS_PACED = Counter(
    "counter_rollup_reels_paced_total",
    "Roll-up reel writes reserved, by rate (busy: commits were backed up)",
    ["rate"],
)


def _never_busy() -> bool:
    return False


class WritePacer:
    """Paces writes to at most `reels_per_s` on average (`busy_reels_per_s` while `busy()`),
    shared by every caller."""

    def __init__(
        self,
        reels_per_s: float,
        busy_reels_per_s: float | None = None,
        busy: Callable[[], bool] = _never_busy,
        clock: Callable[[], float] | None = None,
    ) -> None:
        """`clock` (seconds) defaults to the running loop's time."""
        busy_rate = reels_per_s if busy_reels_per_s is None else busy_reels_per_s
        if reels_per_s <= 0 or busy_rate <= 0:
            raise ValueError("reels_per_s and busy_reels_per_s must be positive")
        self._seconds_per_reel = 1.0 / reels_per_s
        self._busy_seconds_per_reel = 1.0 / busy_rate
        self._busy = busy
        self._clock = clock
        self._free_at = 0.0

    def reserve(self, reels: int) -> float:
        """Reserves the next slot for `reels` writes; returns seconds until it starts."""
        now = self._clock() if self._clock is not None else asyncio.get_running_loop().time()
        start = max(now, self._free_at)
        busy = self._busy()
        per_reel = self._busy_seconds_per_reel if busy else self._seconds_per_reel
        ROLLUP_REELS_PACED.labels(rate="busy" if busy else "normal").inc(reels)
        self._free_at = start + reels * per_reel
        return start - now

    async def wait_for(self, reels: int) -> None:
        """Returns when `reels` more writes fit in the budget."""
        delay_s = self.reserve(reels)
        if delay_s > 0:
            await asyncio.sleep(delay_s)
