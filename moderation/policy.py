"""The moderation policy: combines the signals of an upload into publish, hold for review or
remove, and rates how severe a category of violation is (for review priority).

Pure code. The most severe applicable outcome wins: one signal over its remove threshold
removes the reel, one over its review threshold holds it for review.
"""

from __future__ import annotations

import enum
from collections.abc import Sequence
from dataclasses import dataclass

from moderation.signals import (
    HASH_MATCH_PREFIX,
    NUDITY,
    REPORTS,
    TEXT_BLOCKLIST,
    TEXT_MODEL,
    TEXT_WATCHLIST,
    Signal,
)


class Outcome(enum.Enum):
    PUBLISH = "publish"
    HOLD_FOR_REVIEW = "hold_for_review"
    REMOVE = "remove"


@dataclass(frozen=True)
class Thresholds:
    """Score thresholds per signal; a threshold above 1 disables that outcome."""

    nudity_review: float = 0.45
    """NudeNet's exposed-body score that holds a reel (no published accuracy: review first)."""
    nudity_remove: float = 0.92
    """Only very confident nudity is removed without a person."""
    text_review: float = 0.8
    """alt-profanity-check probability that holds a reel."""
    text_remove: float = 1.1
    """The text model alone never removes (disabled above 1)."""
    hash_match_remove: float = 0.8
    """Share of matched frames (HMA: 80%) at which a bank match removes."""


# Severity of a violation category, 0..1 (the most severe applicable policy wins).
SEVERITY = {
    "terrorism": 1.0,
    "hash_match": 1.0,
    "nudity": 0.8,
    "violence": 0.8,
    "hate": 0.7,
    "harassment": 0.6,
    "text": 0.6,
    "other": 0.4,
    "spam": 0.3,
}


def category_of(signal_name: str) -> str:
    if signal_name.startswith(HASH_MATCH_PREFIX):
        return "hash_match"
    if signal_name == NUDITY:
        return "nudity"
    if signal_name in (TEXT_MODEL, TEXT_BLOCKLIST, TEXT_WATCHLIST):
        return "text"
    if signal_name.startswith(REPORTS + ":"):
        return signal_name.removeprefix(REPORTS + ":")
    return "other"


def severity_of(signals: Sequence[Signal]) -> float:
    """Severity of the most severe category among the signals that say anything."""
    return max(
        (SEVERITY.get(category_of(s.name), 0.4) for s in signals if s.score > 0), default=0.4
    )


@dataclass(frozen=True)
class PolicyDecision:
    outcome: Outcome
    reason: str
    triggered: tuple[Signal, ...]


def decide(signals: Sequence[Signal], thresholds: Thresholds) -> PolicyDecision:
    """Publish, hold or remove, with the signals that decided it."""
    remove: list[Signal] = []
    review: list[Signal] = []
    for signal in signals:
        review_at, remove_at = _limits(signal.name, thresholds)
        if signal.score >= remove_at:
            remove.append(signal)
        elif signal.score >= review_at:
            review.append(signal)
    if remove:
        return PolicyDecision(Outcome.REMOVE, _reason(remove), tuple(remove))
    if review:
        return PolicyDecision(Outcome.HOLD_FOR_REVIEW, _reason(review), tuple(review))
    return PolicyDecision(Outcome.PUBLISH, "", ())


def _limits(name: str, thresholds: Thresholds) -> tuple[float, float]:
    """(review, remove) thresholds of a signal."""
    if name == NUDITY:
        return thresholds.nudity_review, thresholds.nudity_remove
    if name == TEXT_MODEL:
        return thresholds.text_review, thresholds.text_remove
    if name == TEXT_BLOCKLIST:
        return 0.5, 0.5  # a blocklisted term removes
    if name == TEXT_WATCHLIST:
        return 0.5, 2.0  # a watchlisted term holds
    if name.startswith(HASH_MATCH_PREFIX):
        return thresholds.hash_match_remove, thresholds.hash_match_remove
    return 2.0, 2.0  # informational


def _reason(signals: Sequence[Signal]) -> str:
    return "; ".join(f"{s.name} {s.score:.2f}: {s.reason}" for s in signals)
