"""One judgement of a window of events: the model's flags, lockstep groups, both combined.

Pure: the service calls it in a worker thread on its recent history, training and
evaluation call it on simulated traffic, so what is measured is what runs.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from spam.event_frame import EventFrame
from spam.features import extract_features
from spam.lockstep import LockstepParams, LockstepResult, detect_lockstep
from spam.model import SpamModel

BoolArray = npt.NDArray[np.bool_]
I64 = npt.NDArray[np.int64]


@dataclass(frozen=True)
class Judgement:
    model_flagged: BoolArray
    lockstep: LockstepResult

    @property
    def flagged(self) -> BoolArray:
        combined: BoolArray = self.model_flagged | self.lockstep.flagged
        return combined


def judge(
    model: SpamModel,
    events: EventFrame,
    durations_ms: I64,
    first_seen_ms: I64 | None = None,
    lockstep_params: LockstepParams | None = None,
) -> Judgement:
    """Flags the spam among `events` (model over per-event features, or lockstep)."""
    features = extract_features(events, durations_ms, first_seen_ms)
    model_flagged = model.is_spam(features) if len(events) else np.zeros(0, dtype=np.bool_)
    lockstep = detect_lockstep(
        events.user_ids, events.reel_ids, events.ts_ms, lockstep_params, events.ip_hashes
    )
    return Judgement(model_flagged, lockstep)
