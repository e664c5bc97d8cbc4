"""The judge's rounds over its history: which events each round removes.

A round takes the events that arrived since the previous one into the history, judges the
whole history (features + model, lockstep; `spam.judging.judge`) and removes the flagged
events that have settled (entered the history at least `settle_ms` before the round) and
were not removed before. A round is due when events arrived since the last one, or when the
last judgement flagged events that had not settled yet.

Pure and clock-free: the caller passes the round's time. The service (`spam.spam_filter`)
runs `judge` in a worker thread and turns what a round removes into a verdict; the
evaluation (`spam.detection_delay`) replays simulated traffic through the same rounds in
simulated time to measure detection delay, so what is measured is what runs.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from spam.event_frame import EventFrame
from spam.history import EventHistory
from spam.judging import Judgement, judge
from spam.lockstep import LockstepParams
from spam.model import SpamModel

BoolArray = npt.NDArray[np.bool_]
I64 = npt.NDArray[np.int64]


@dataclass(frozen=True)
class RoundOutcome:
    """One round's decision; every mask is over the history's events at that round."""

    judgement: Judgement
    settled_flagged: BoolArray
    """Flagged and settled (removed now or in an earlier round)."""
    removed: BoolArray
    """Removed by this round: flagged, settled, not removed before."""


class JudgeRounds:
    def __init__(
        self,
        model: SpamModel,
        history: EventHistory,
        settle_ms: int,
        lockstep_params: LockstepParams | None = None,
    ) -> None:
        self.model = model
        self.history = history
        self._settle_ms = settle_ms
        self._lockstep_params = lockstep_params
        self._fresh = False
        # The last judgement flagged events too recent to remove yet.
        self._unsettled = False

    def admit(self, fresh: EventFrame, durations_ms: I64, now_ms: int) -> None:
        """Adds the events that arrived since the last round (they enter at `now_ms`)."""
        if len(fresh):
            self.history.add(fresh, durations_ms, now_ms)
            self._fresh = True

    @property
    def due(self) -> bool:
        """Whether this round has anything to judge (new events, or flags to settle)."""
        return (self._fresh or self._unsettled) and len(self.history) > 0

    def judge(self) -> Judgement:
        """The judgement of the whole history (CPU work: the service runs it in a thread;
        nothing may change the history meanwhile)."""
        return judge(
            self.model,
            self.history.events,
            self.history.durations_ms,
            lockstep_params=self._lockstep_params,
        )

    def settle(self, judgement: Judgement, now_ms: int) -> RoundOutcome:
        """Removes the settled flagged events of `judgement` (made of the history as it is);
        marks them removed in the history."""
        settled = self.history.settled(now_ms, self._settle_ms)
        flagged = judgement.flagged & settled
        self._unsettled = bool((judgement.flagged & ~settled).any())
        self._fresh = False
        removed = flagged & ~self.history.removed
        self.history.removed |= removed
        return RoundOutcome(judgement, flagged, removed)
