"""Back-pressure from working shards that fall behind.

The journal's bound (`max_journal_events`) exists for outages: with shards down, an edge
keeps accepting into its journal for minutes. Under overload it is the wrong bound: the
shards are up but drain less than the edge accepts, so the backlog (and with it the time
until a count shows anywhere) grows until the journal is full (`make bench-counters`:
226k events/s accepted, 124k drained, freshness p99 34 s).

So an edge also holds new calls (edge/journal.py `admit`; RESOURCE_EXHAUSTED, "retry with
backoff", if it lasts) while some shard is *working but behind* (`max_forward_backlog_events`,
0 disables it; edge/config.py): it acknowledged a batch within the last window, its
backlog is above `max_backlog_events` and grew over the last window. A shard
that acknowledges nothing (down, moving) never triggers it: its events wait in the journal
as before, and after an outage the backlog drains while the edge accepts, as long as it
shrinks.
Pure logic; the journal feeds it.
"""

from __future__ import annotations

from collections.abc import Mapping

WINDOW_S = 1.0


class ForwardingPressure:
    """Per-shard 'working but behind' detector over one-second windows."""

    def __init__(self, max_backlog_events: int, window_s: float = WINDOW_S) -> None:
        self._max_backlog = max_backlog_events
        self._window_s = window_s
        self._last_ack: dict[int, float] = {}
        self._window_start = -window_s
        self._window_backlog: dict[int, int] = {}
        self._growing: set[int] = set()

    def acknowledged(self, shard: int, now: float) -> None:
        """A batch of `shard` was acknowledged at `now` (monotonic seconds)."""
        self._last_ack[shard] = now

    def lagging_shard(self, backlog: Mapping[int, int], now: float) -> int | None:
        """A shard that is working but behind (see the module doc), or None.

        `backlog`: unacknowledged events per shard now.
        """
        if self._max_backlog <= 0:
            return None
        if now - self._window_start >= self._window_s:
            self._growing = {
                shard
                for shard, events in backlog.items()
                if events > self._window_backlog.get(shard, 0)
            }
            self._window_backlog = dict(backlog)
            self._window_start = now
        for shard in self._growing:
            working = now - self._last_ack.get(shard, float("-inf")) <= self._window_s
            if working and backlog.get(shard, 0) > self._max_backlog:
                return shard
        return None
