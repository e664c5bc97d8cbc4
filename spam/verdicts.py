"""Verdicts: the spam found in one judgement, as per-reel removals, and their book-keeping.

A verdict removes each flagged view once (-1 view per event: the filter only receives
events the edge counted) and each flagged like once per (user, reel) (the counter counts
likes per user). Its corrections carry the idempotent ids `spam:<verdict id>` and, for an
appeal, `spam-reversal:<verdict id>` with the opposite deltas, so retries never apply twice
and a reversal restores exactly what the verdict removed. Pure: the service applies the
corrections.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field

import numpy as np
import numpy.typing as npt

from protos import counter_pb2
from spam.errors import AlreadyReversed, UnknownVerdict
from spam.event_frame import LIKE, VIEW, EventFrame
from spam.windows import unique_counts, unique_sorted

BoolArray = npt.NDArray[np.bool_]


@dataclass
class Verdict:
    verdict_id: str
    reason: str
    created_ms: int
    reel_ids: list[int]
    view_deltas: list[int]
    """Negative: views removed per reel."""
    like_deltas: list[int]
    user_ids: list[int]
    like_pairs: list[tuple[int, int]] = field(default_factory=list)
    reversed: bool = False

    def correction(self) -> counter_pb2.CorrectionBatch:
        return counter_pb2.CorrectionBatch(
            batch_id=f"spam:{self.verdict_id}",
            reel_ids=self.reel_ids,
            view_deltas=self.view_deltas,
            like_deltas=self.like_deltas,
            reason=self.reason,
            moves_to_removed=True,
        )

    def reversal(self) -> counter_pb2.CorrectionBatch:
        return counter_pb2.CorrectionBatch(
            batch_id=f"spam-reversal:{self.verdict_id}",
            reel_ids=self.reel_ids,
            view_deltas=[-d for d in self.view_deltas],
            like_deltas=[-d for d in self.like_deltas],
            reason=f"reversal of {self.verdict_id}",
            moves_to_removed=True,
        )


class VerdictBook:
    """Every verdict of this process, and the like pairs already removed."""

    def __init__(self, id_prefix: str) -> None:
        self._id_prefix = id_prefix
        self._next = 1
        self.verdicts: dict[str, Verdict] = {}
        self._removed_like_pairs: set[tuple[int, int]] = set()

    def draft(
        self, events: EventFrame, flagged: BoolArray, reason: str, now_ms: int
    ) -> Verdict | None:
        """The verdict removing the flagged events (None when nothing is left to remove)."""
        views = flagged & (events.kinds == VIEW)
        view_reels, view_counts = unique_counts(events.reel_ids[views])
        likes = flagged & (events.kinds == LIKE)
        pairs = {
            (int(u), int(r))
            for u, r in zip(
                events.user_ids[likes].tolist(), events.reel_ids[likes].tolist(), strict=True
            )
        } - self._removed_like_pairs
        like_per_reel: dict[int, int] = {}
        for _, reel in pairs:
            like_per_reel[reel] = like_per_reel.get(reel, 0) + 1
        deltas: dict[int, list[int]] = {
            int(r): [-int(c), 0] for r, c in zip(view_reels, view_counts, strict=True)
        }
        for reel, count in like_per_reel.items():
            deltas.setdefault(reel, [0, 0])[1] = -count
        if not deltas:
            return None
        reels = sorted(deltas)
        verdict = Verdict(
            verdict_id=f"{self._id_prefix}-{self._next}",
            reason=reason,
            created_ms=now_ms,
            reel_ids=reels,
            view_deltas=[deltas[r][0] for r in reels],
            like_deltas=[deltas[r][1] for r in reels],
            user_ids=[int(u) for u in unique_sorted(events.user_ids[flagged]).tolist()],
            like_pairs=sorted(pairs),
        )
        self._next += 1
        self.verdicts[verdict.verdict_id] = verdict
        self._removed_like_pairs |= pairs
        return verdict

    def restore(self, verdicts: Iterable[Verdict]) -> None:
        """Takes back the verdicts of earlier runs (saved in the verdict store). New ids
        never collide with theirs: the prefix names this run."""
        for verdict in verdicts:
            self.verdicts[verdict.verdict_id] = verdict
            if not verdict.reversed:
                self._removed_like_pairs |= set(verdict.like_pairs)

    def reverse(self, verdict_id: str) -> Verdict:
        """Marks a verdict reversed and returns it.

        Raises:
            UnknownVerdict, AlreadyReversed.
        """
        verdict = self.verdicts.get(verdict_id)
        if verdict is None:
            raise UnknownVerdict(verdict_id)
        if verdict.reversed:
            raise AlreadyReversed(verdict_id)
        verdict.reversed = True
        self._removed_like_pairs -= set(verdict.like_pairs)
        return verdict

    def report(self, reel_id: int) -> tuple[int, int, list[str]]:
        """Views and likes removed from a reel by standing verdicts, and every verdict id
        that touched it (reversed ones included, for the audit)."""
        views = likes = 0
        ids = []
        for verdict in self.verdicts.values():
            if reel_id not in verdict.reel_ids:
                continue
            ids.append(verdict.verdict_id)
            if not verdict.reversed:
                index = verdict.reel_ids.index(reel_id)
                views -= verdict.view_deltas[index]
                likes -= verdict.like_deltas[index]
        return views, likes, ids
