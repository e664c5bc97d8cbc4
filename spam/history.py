"""Recent events the judge looks at, with each event's verdict state.

Every event gets its model verdict once (`decided`, `model_flagged`), in the first judge
round after it settled (and, when the judge takes a second look, once more later:
`looked_again`); lockstep clustering may flag it later (`lockstep_flagged`, set
once). An event is removed (put in a verdict) at most once: `removed` marks it, and a
reversed verdict's events stay marked, so an appeal is never undone by a later round.
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
        self.durations_ms: I64 = np.zeros(0, dtype=np.int64)
        self.arrived_ms: I64 = np.zeros(0, dtype=np.int64)
        self.seq: I64 = np.zeros(0, dtype=np.int64)
        self.decided: BoolArray = np.zeros(0, dtype=np.bool_)
        """The model's verdict was given (final: never judged again)."""
        self.model_flagged: BoolArray = np.zeros(0, dtype=np.bool_)
        """The model's verdict was spam."""
        self.repeat_offender: BoolArray = np.zeros(0, dtype=np.bool_)
        """Of `model_flagged`, under the threshold but its actor's flags made it spam
        (`JudgeRounds` repeat_offender_flags)."""
        self.looked_again: BoolArray = np.zeros(0, dtype=np.bool_)
        """Given its second (last) model verdict (`JudgeRounds` second_look_ms)."""
        self.lockstep_flagged: BoolArray = np.zeros(0, dtype=np.bool_)
        """Lockstep clustering flagged it (after it settled)."""
        self.removed: BoolArray = np.zeros(0, dtype=np.bool_)
        """Put in a verdict (reversed or not)."""
        self._added = 0

    def __len__(self) -> int:
        return len(self.events)

    @property
    def flagged(self) -> BoolArray:
        """Judged spam by either detector so far."""
        flagged: BoolArray = self.model_flagged | self.lockstep_flagged
        return flagged

    def add(self, frame: EventFrame, durations_ms: I64, arrived_ms: int) -> None:
        count = len(frame)
        none = np.zeros(count, dtype=np.bool_)
        self.events = EventFrame.concat([self.events, frame])
        self.durations_ms = np.concatenate([self.durations_ms, durations_ms])
        self.arrived_ms = np.concatenate(
            [self.arrived_ms, np.full(count, arrived_ms, dtype=np.int64)]
        )
        self.seq = np.concatenate(
            [self.seq, np.arange(self._added, self._added + count, dtype=np.int64)]
        )
        self.decided = np.concatenate([self.decided, none])
        self.model_flagged = np.concatenate([self.model_flagged, none])
        self.repeat_offender = np.concatenate([self.repeat_offender, none])
        self.looked_again = np.concatenate([self.looked_again, none])
        self.lockstep_flagged = np.concatenate([self.lockstep_flagged, none])
        self.removed = np.concatenate([self.removed, none])
        self._added += count
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
            for name in (
                "durations_ms",
                "arrived_ms",
                "seq",
                "decided",
                "model_flagged",
                "repeat_offender",
                "looked_again",
                "lockstep_flagged",
                "removed",
            ):
                setattr(self, name, getattr(self, name)[keep])
