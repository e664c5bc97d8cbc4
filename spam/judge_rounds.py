"""The judge's rounds over its history: which events each round removes.

Incremental: every event gets its model verdict once, and it is final. A round takes the
events that arrived since the previous one into the history; the events that have settled
(entered the history at least `settle_ms` before the round) and have no verdict yet are
scored by the model with the features of the history as it is then (an hour behind them,
and what arrived in the `settle_ms` after them) against the artifact's threshold plus
`threshold_offset`; the flagged ones are removed at once, the others are never judged
again. Re-judging every event for an hour (how the rounds worked
before) removed spam up to an hour late and flagged organic events late as their users'
hour of aggregates grew (docs/spam.md, Detection delay).

Optionally (`second_look_ms` > 0, off in the service's defaults) an event the model
cleared gets one more, last verdict once it entered the history `second_look_ms` ago, with
what came in meanwhile: spam that shows only with more of its account's events is caught
later (its delay is that long), at the price of the organic events a later look flags.

Repeat offenders (`repeat_offender_flags` > 0): an event whose actor (user, device,
country) already has that many events over the threshold in the history is flagged at its
own verdict, margin or not. A camouflaged bot's first session looks organic event by event
until its campaign events are flagged; after them, its organic-looking cover is removed
too. Its earlier cleared events stay (verdicts are final), so the streaming delay holds.

Lockstep clustering runs over the whole history every `lockstep_interval_ms` (when events
arrived since its last run, or it flagged events that had not settled yet). It flags
settled events only, each once; the ones not removed yet are removed, however old (its
precision is 1.0 on the evaluation traffic): a group found late still leaves the counts,
and its delay is reported as it is; unless `lockstep_reach_back_ms` bounds how old an
event (since it entered the history) lockstep may still flag: older events of a group
found late stay with the model's verdict. A user's later events are judged with the flagged ones
in its aggregates, and the blocklist (spam.blocklist) takes users with enough flagged events.

Pure and clock-free: the caller passes the round's time. The service (`spam.spam_filter`)
runs `judge` in a worker thread and turns what a round removes into a verdict; the
evaluation (`spam.detection_delay`) replays simulated traffic through the same rounds in
simulated time to measure detection delay, so what is measured is what runs.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import numpy as np
import numpy.typing as npt

from spam.event_frame import EventFrame
from spam.features import extract_features
from spam.history import EventHistory
from spam.lockstep import LockstepParams, LockstepResult, detect_lockstep
from spam.model import SpamModel
from spam.windows import dense_keys, pair_keys

BoolArray = npt.NDArray[np.bool_]
I64 = npt.NDArray[np.int64]
F64 = npt.NDArray[np.float64]


@dataclass(frozen=True)
class RoundJudgement:
    """What one round found; every mask is over the history's events as they were judged."""

    now_ms: int
    settled: BoolArray
    decided: BoolArray
    """Given their model verdict by this round (settled, no verdict before)."""
    looked_again: BoolArray
    """Given their second model verdict by this round (cleared by the first)."""
    margins: F64
    """The model's margin of each event of `decided` and `looked_again` (NaN elsewhere)."""
    model_flagged: BoolArray
    """Of `decided` and `looked_again`, the ones whose margin reaches the threshold."""
    lockstep: LockstepResult | None
    """The lockstep run of this round (None: not run this round)."""
    repeat_offender: BoolArray
    """Of `model_flagged`, the ones under the threshold flagged because their actor had
    `repeat_offender_flags` events over it."""

    @property
    def lockstep_flagged(self) -> BoolArray:
        """Settled events the lockstep run flags (none when it did not run)."""
        if self.lockstep is None:
            return np.zeros(len(self.settled), dtype=np.bool_)
        flagged: BoolArray = self.lockstep.flagged & self.settled
        return flagged


@dataclass(frozen=True)
class RoundOutcome:
    """One round's decision; every mask is over the history's events at that round."""

    judgement: RoundJudgement
    model_flagged: BoolArray
    """Flagged by the model's (final) verdict of this round."""
    lockstep_flagged: BoolArray
    """Flagged by lockstep for the first time in this round (removed before or not)."""
    removed: BoolArray
    """Removed by this round: newly flagged by either detector, not removed before."""
    flagged: BoolArray
    """Every event of the history judged spam so far (this round and earlier ones)."""


class JudgeRounds:
    def __init__(
        self,
        model: SpamModel,
        history: EventHistory,
        settle_ms: int,
        lockstep_interval_ms: int,
        lockstep_params: LockstepParams | None = None,
        second_look_ms: int = 0,
        threshold_offset: float = 0.0,
        repeat_offender_flags: int = 0,
        lockstep_reach_back_ms: int = 0,
    ) -> None:
        if 0 < second_look_ms <= settle_ms:
            raise ValueError("a second look comes after the first (second_look_ms > settle_ms)")
        self.model = model
        self.history = history
        self._settle_ms = settle_ms
        self._second_look_ms = second_look_ms
        # Verdicts are final: the service may ask for a higher margin than the artifact's
        # threshold (chosen offline, on whole runs).
        self.threshold = model.threshold + threshold_offset
        self._repeat_offender_flags = repeat_offender_flags
        self._lockstep_interval_ms = lockstep_interval_ms
        self._lockstep_params = lockstep_params
        self._lockstep_reach_back_ms = lockstep_reach_back_ms
        self._last_lockstep_ms: int | None = None
        # Events arrived since the last lockstep run, or it flagged unsettled ones.
        self._lockstep_stale = False

    def admit(self, fresh: EventFrame, durations_ms: I64, now_ms: int) -> None:
        """Adds the events that arrived since the last round (they enter at `now_ms`)."""
        if len(fresh):
            self.history.add(fresh, durations_ms, now_ms)
            self._lockstep_stale = True

    def _awaiting_verdict(self, now_ms: int) -> BoolArray:
        awaiting: BoolArray = self.history.settled(now_ms, self._settle_ms) & ~self.history.decided
        return awaiting

    def _awaiting_second_look(self, now_ms: int | None) -> BoolArray:
        """Cleared by the model, not removed, no second look yet (and due by `now_ms`)."""
        history = self.history
        if not self._second_look_ms:
            return np.zeros(len(history), dtype=np.bool_)
        awaiting: BoolArray = (
            history.decided & ~history.model_flagged & ~history.removed & ~history.looked_again
        )
        if now_ms is not None:
            awaiting &= history.settled(now_ms, self._second_look_ms)
        return awaiting

    def _lockstep_due(self, now_ms: int) -> bool:
        return self._lockstep_stale and (
            self._last_lockstep_ms is None
            or now_ms - self._last_lockstep_ms >= self._lockstep_interval_ms
        )

    def due(self, now_ms: int) -> bool:
        """Whether a round at `now_ms` has work: settled events awaiting their verdict, or
        a lockstep run."""
        if not len(self.history):
            return False
        return (
            bool(self._awaiting_verdict(now_ms).any())
            or bool(self._awaiting_second_look(now_ms).any())
            or self._lockstep_due(now_ms)
        )

    @property
    def pending(self) -> bool:
        """Whether a later round still has work (events without a verdict, or a lockstep
        run), even with no new events."""
        return len(self.history) > 0 and (
            not bool(self.history.decided.all())
            or bool(self._awaiting_second_look(None).any())
            or self._lockstep_stale
        )

    def judge(self, now_ms: int) -> RoundJudgement:
        """The round at `now_ms` (CPU work: the service runs it in a thread; nothing may
        change the history meanwhile): model verdicts of the settled events without one,
        and the lockstep run when it is due. Changes nothing: `settle` applies it."""
        history = self.history
        settled = history.settled(now_ms, self._settle_ms)
        decided = settled & ~history.decided
        looked_again = self._awaiting_second_look(now_ms)
        scored = decided | looked_again
        margins = np.full(len(history), np.nan, dtype=np.float64)
        if scored.any():
            # Per-user, per-IP and per-reel aggregates need the whole history; only the
            # events awaiting a verdict are scored.
            features = extract_features(history.events, history.durations_ms)
            margins[scored] = self.model.margins(features[scored])
        model_flagged = scored & (margins >= self.threshold)
        repeat_offender = np.zeros(len(history), dtype=np.bool_)
        if self._repeat_offender_flags and decided.any():
            repeat_offender = decided & ~model_flagged & self._offending_actor(model_flagged)
        lockstep = None
        if self._lockstep_due(now_ms):
            lockstep = detect_lockstep(
                history.events.user_ids,
                history.events.reel_ids,
                history.events.ts_ms,
                self._lockstep_params,
                history.events.ip_hashes,
            )
            if self._lockstep_reach_back_ms:
                # A group found late leaves its older events to the model (and its users
                # to the blocklist): lockstep removes what arrived within the reach-back.
                recent = history.arrived_ms >= now_ms - self._lockstep_reach_back_ms
                lockstep = replace(lockstep, flagged=lockstep.flagged & recent)
        return RoundJudgement(
            now_ms,
            settled,
            decided,
            looked_again,
            margins,
            model_flagged | repeat_offender,
            lockstep,
            repeat_offender,
        )

    def _offending_actor(self, flagged_now: BoolArray) -> BoolArray:
        """Per event: its actor (user, device, country) has `repeat_offender_flags` events
        in the history whose model margin reached the threshold (this round's included;
        not the ones flagged only for being a repeat offender's)."""
        events = self.history.events
        by_margin = (self.history.model_flagged & ~self.history.repeat_offender) | flagged_now
        user = dense_keys(events.user_ids)[0]
        actor = pair_keys(pair_keys(user, events.devices), events.countries)
        flags = np.bincount(actor[by_margin], minlength=int(actor.max()) + 1)
        offending: BoolArray = flags[actor] >= self._repeat_offender_flags
        return offending

    def settle(self, judgement: RoundJudgement) -> RoundOutcome:
        """Applies `judgement` (made of the history as it still is): records the verdicts,
        marks the newly flagged events removed."""
        history = self.history
        history.decided |= judgement.decided
        history.looked_again |= judgement.looked_again
        history.model_flagged |= judgement.model_flagged
        history.repeat_offender |= judgement.repeat_offender
        lockstep_flagged = judgement.lockstep_flagged & ~history.lockstep_flagged
        history.lockstep_flagged |= lockstep_flagged
        removed = (judgement.model_flagged | lockstep_flagged) & ~history.removed
        history.removed |= removed
        if judgement.lockstep is not None:
            self._last_lockstep_ms = judgement.now_ms
            self._lockstep_stale = bool((judgement.lockstep.flagged & ~judgement.settled).any())
        return RoundOutcome(
            judgement, judgement.model_flagged, lockstep_flagged, removed, history.flagged
        )
