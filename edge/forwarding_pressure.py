"""Back-pressure from working shards that fall behind.

The journal's bound (`max_journal_events`) exists for outages: with shards down, an edge
keeps accepting into its journal for minutes. Under overload it is the wrong bound: the
shards are up but drain less than the edge accepts, so the backlog (and with it the time
until a count shows anywhere) grows until the journal is full (`make bench-counters`:
226k events/s accepted, 124k drained, freshness p99 34 s).

So an edge also holds new calls (edge/journal.py `admit`; RESOURCE_EXHAUSTED, "retry with
backoff", if it lasts) that have events for a shard that is *working but behind*
(`max_forward_backlog_events`, 0 disables it; edge/config.py): it acknowledged a batch
within the last window, its backlog is above `max_backlog_events` and larger than one
window ago. A call whose events all go to other shards adds nothing to that backlog and
goes through (an app's call carries a handful of events, so a few shards at most). Until
session 22 any shard behind held every call. The benchmark's calls have 1,000 events, so
they touch every shard either way; its freshness probe sends one event at a time. Three
alternated closed-loop peaks (60 s, after a 30 s warm-up; docs/benchmarks.md, session
22): freshness p99 913, 960 and 902 ms against 1,040, 1,076 and 1,030 when any shard held
every call.

A shard that acknowledges nothing (down, moving) never triggers it: its events wait in the
journal as before, and after an outage the backlog drains while the edge accepts, as long
as it shrinks.

Two levels, so that a shard slowed down for a few seconds does not hold calls: at
moderate load a Cassandra memtable flush, a collection or a burst of roll-ups stalls the
shards' commits for a few seconds, the backlog passes the bound, and holding then only
delays the callers (their events are durable either way, and the shard catches up by
itself): at 280,000 events/s, half the benchmark's peak, a forced flush made the edges
hold 276-1,426 calls and took the ack p99 from ~26 ms to 116-297 ms (session 21,
docs/benchmarks.md). So a shard that has not been behind lately holds calls only above
`HARD_FACTOR` times the bound; once it has (overload: the closed-loop peak reaches it in
about a second), the bound itself applies as long as the shard keeps being behind, and
`OVERLOAD_MEMORY_S` after. In alternated runs at that rate this held 0 and 0 calls against
915 and 151 through the stalls that came by themselves. A forced flush of ~600 MiB still
takes some pairs past twice the bound: 569 calls held against 768.

The window slides (a sample every tenth of it). Until session 20 it was fixed: a backlog
that had shrunk over one window was accepted freely for the whole next one, so under a
closed-loop overload it could climb in steps: +888,000 events over a 45 s peak at four
(edge, shard) pairs with a 50,000 bound, against +307,000 and +321,000 with the window
sliding (edges ahead of the counters in CPU priority; docs/benchmarks.md, session 20).
Pure logic; the journal feeds it.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Mapping

WINDOW_S = 1.0
SAMPLES_PER_WINDOW = 10
HARD_FACTOR = 2
OVERLOAD_MEMORY_S = 2.0


class ForwardingPressure:
    """Per-shard 'working but behind' detector over a sliding window."""

    def __init__(self, max_backlog_events: int, window_s: float = WINDOW_S) -> None:
        self._max_backlog = max_backlog_events
        self._window_s = window_s
        self._sample_every_s = window_s / SAMPLES_PER_WINDOW
        self._last_ack: dict[int, float] = {}
        # (monotonic s, backlog) per shard, from one at or before the window's start on.
        self._samples: dict[int, deque[tuple[float, int]]] = {}
        # Per shard, until when the bound itself applies (see the module doc).
        self._overloaded_until: dict[int, float] = {}

    def acknowledged(self, shard: int, now: float) -> None:
        """A batch of `shard` was acknowledged at `now` (monotonic seconds)."""
        self._last_ack[shard] = now

    def lagging_shards(self, backlog: Mapping[int, int], now: float) -> list[int]:
        """The shards that are working but behind, at the level that applies to each (see
        the module doc), in `backlog`'s order; empty when none is.

        `backlog`: unacknowledged events per shard now.
        """
        if self._max_backlog <= 0:
            return []
        # Every shard is looked at, also once one is behind: each look is also the sample
        # its sliding window is made of.
        return [shard for shard, events in backlog.items() if self._behind(shard, events, now)]

    def _behind(self, shard: int, backlog: int, now: float) -> bool:
        samples = self._samples.setdefault(shard, deque())
        if not samples or now - samples[-1][0] >= self._sample_every_s:
            samples.append((now, backlog))
        while len(samples) > 1 and samples[1][0] <= now - self._window_s:
            samples.popleft()
        working = now - self._last_ack.get(shard, float("-inf")) <= self._window_s
        if not (working and backlog > self._max_backlog and backlog > samples[0][1]):
            return False
        recently_overloaded = now < self._overloaded_until.get(shard, float("-inf"))
        overloaded = recently_overloaded or backlog > HARD_FACTOR * self._max_backlog
        if overloaded:
            self._overloaded_until[shard] = now + OVERLOAD_MEMORY_S
        return overloaded
