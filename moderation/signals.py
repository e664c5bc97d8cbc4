"""What one automatic or human check says about a reel: a named score with a reason."""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import dataclass

NUDITY = "nudity"
TEXT_MODEL = "text_model"
TEXT_BLOCKLIST = "text_blocklist"
TEXT_WATCHLIST = "text_watchlist"
HASH_MATCH_PREFIX = "hash_match:"
REPORTS = "reports"


@dataclass(frozen=True)
class Signal:
    """One check's result.

    Attributes:
        name: which check (`nudity`, `text_model`, `hash_match:<bank>`, ...).
        score: likelihood of a violation, 0..1.
        reason: what the check saw, for moderators and the audit trail.
    """

    name: str
    score: float
    reason: str


def signals_to_json(signals: Iterable[Signal]) -> str:
    return json.dumps([[s.name, round(s.score, 4), s.reason] for s in signals])


def signals_from_json(text: str | None) -> list[Signal]:
    if not text:
        return []
    return [
        Signal(str(name), float(score), str(reason)) for name, score, reason in json.loads(text)
    ]
