"""Recent events the judge looks at, with what was already removed.

An event is removed (put in a verdict) at most once: `removed` marks it, and a reversed
verdict's events stay marked, so an appeal is never undone by the next judgement.
Bounded by time (`history_ms` behind the newest event) and by count (oldest dropped first).
Each event keeps the time it entered the history (the service's clock, at the judge round
that took it from the buffer), so the judge can wait until what came after an event has
been seen too (`settled`), and its sequence number: its position in the stream of events
ever added (0 for the first), which names an event across trims.
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

from spam.event_frame import EventFrame

BoolArray = npt.NDArray[np.bool_]
I64 = npt.NDArray[np.int64]


class EventHistory:
    def __init__(self, history_ms: int, max_events: int) -> None:
        self._history_ms = history_ms
        self._max_events = max_events
        self.events = EventFrame.empty()
        self.removed: BoolArray = np.zeros(0, dtype=np.bool_)
        self.durations_ms: I64 = np.zeros(0, dtype=np.int64)
        self.arrived_ms: I64 = np.zeros(0, dtype=np.int64)
        self.seq: I64 = np.zeros(0, dtype=np.int64)
        self._added = 0

    def __len__(self) -> int:
        return len(self.events)

    def add(self, frame: EventFrame, durations_ms: I64, arrived_ms: int) -> None:
        self.events = EventFrame.concat([self.events, frame])
        self.removed = np.concatenate([self.removed, np.zeros(len(frame), dtype=np.bool_)])
        self.durations_ms = np.concatenate([self.durations_ms, durations_ms])
        self.arrived_ms = np.concatenate(
            [self.arrived_ms, np.full(len(frame), arrived_ms, dtype=np.int64)]
        )
        self.seq = np.concatenate(
            [self.seq, np.arange(self._added, self._added + len(frame), dtype=np.int64)]
        )
        self._added += len(frame)
        self._trim()

    def settled(self, now_ms: int, settle_ms: int) -> BoolArray:
        """Events that arrived at least `settle_ms` before `now_ms`."""
        return self.arrived_ms <= now_ms - settle_ms

    def _trim(self) -> None:
        if not len(self.events):
            return
        newest = int(self.events.ts_ms.max())
        keep = self.events.ts_ms > newest - self._history_ms
        if int(keep.sum()) > self._max_events:
            keep &= np.cumsum(keep[::-1])[::-1] <= self._max_events
        if not keep.all():
            self.events = self.events.take(keep)
            self.removed = self.removed[keep]
            self.durations_ms = self.durations_ms[keep]
            self.arrived_ms = self.arrived_ms[keep]
            self.seq = self.seq[keep]
