"""How user reports add up: one report per reporter per reel, weighted by the reporter's
reputation, compared with the escalation and hide thresholds. Pure code."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

DEFAULT_REPUTATION = 1.0
MIN_REPUTATION = 0.1
MAX_REPUTATION = 3.0
UPHELD_STEP = 0.2
REJECTED_STEP = -0.3


@dataclass(frozen=True)
class ReportThresholds:
    escalate_weight: float = 3.0
    """Weighted reports that open a review item."""
    hide_weight: float = 6.0
    """Weighted reports that also hide the reel until a moderator decides."""


@dataclass(frozen=True)
class ReportTally:
    weight: float
    reporters: int
    escalate: bool
    hide: bool
    top_reason: str


def report_weight(reputation: float | None) -> float:
    value = DEFAULT_REPUTATION if reputation is None else reputation
    return min(MAX_REPUTATION, max(MIN_REPUTATION, value))


def tally(reports: Iterable[tuple[str, float]], thresholds: ReportThresholds) -> ReportTally:
    """`reports`: (reason, weight) of each counted report of one reel."""
    by_reason: dict[str, float] = {}
    total, count = 0.0, 0
    for reason, weight in reports:
        by_reason[reason] = by_reason.get(reason, 0.0) + weight
        total += weight
        count += 1
    top = max(by_reason, key=lambda r: by_reason[r]) if by_reason else "other"
    return ReportTally(
        weight=total,
        reporters=count,
        escalate=total >= thresholds.escalate_weight,
        hide=total >= thresholds.hide_weight,
        top_reason=top,
    )


def likelihood_of(weight: float, thresholds: ReportThresholds) -> float:
    """A 0..1 likelihood from the weight: 0.5 at the escalation threshold, near 1 at hide."""
    return min(1.0, 0.5 * weight / thresholds.escalate_weight) if weight > 0 else 0.0


def updated_reputation(current: float | None, upheld: bool) -> float:
    """A reporter's reputation after a decision on a reel they reported."""
    step = UPHELD_STEP if upheld else REJECTED_STEP
    return report_weight(report_weight(current) + step)
