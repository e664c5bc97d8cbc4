"""The pure parts of moderation: policy, report weighting, review priority, hash matching,
text normalisation."""

from __future__ import annotations

import random

import pytest

from moderation.hash_index import FrameHash, HashIndex
from moderation.policy import Outcome, Thresholds, decide, severity_of
from moderation.report_weighting import (
    MAX_REPUTATION,
    MIN_REPUTATION,
    ReportThresholds,
    report_weight,
    tally,
    updated_reputation,
)
from moderation.review_priority import priority, reach_of, views_velocity
from moderation.signals import Signal, signals_from_json, signals_to_json
from moderation.text_screen import normalise, words_of


def test_clean_signals_publish() -> None:
    decision = decide([Signal("nudity", 0.1, ""), Signal("text_model", 0.2, "")], Thresholds())
    assert decision.outcome is Outcome.PUBLISH


def test_likely_nudity_is_held_and_very_confident_nudity_removed() -> None:
    assert decide([Signal("nudity", 0.6, "x")], Thresholds()).outcome is Outcome.HOLD_FOR_REVIEW
    assert decide([Signal("nudity", 0.95, "x")], Thresholds()).outcome is Outcome.REMOVE


def test_the_text_model_alone_never_removes() -> None:
    decision = decide([Signal("text_model", 1.0, "threat")], Thresholds())
    assert decision.outcome is Outcome.HOLD_FOR_REVIEW


def test_the_most_severe_outcome_wins_and_names_its_signals() -> None:
    signals = [
        Signal("text_model", 0.9, "abuse"),
        Signal("hash_match:removed_reels", 0.85, "matches reel:1"),
    ]
    decision = decide(signals, Thresholds())
    assert decision.outcome is Outcome.REMOVE
    assert [s.name for s in decision.triggered] == ["hash_match:removed_reels"]
    assert "reel:1" in decision.reason


def test_a_partial_hash_match_does_not_remove() -> None:
    assert decide([Signal("hash_match:b", 0.5, "")], Thresholds()).outcome is Outcome.PUBLISH


def test_blocklist_removes_and_watchlist_holds() -> None:
    assert decide([Signal("text_blocklist", 1.0, "")], Thresholds()).outcome is Outcome.REMOVE
    watch = decide([Signal("text_watchlist", 1.0, "")], Thresholds())
    assert watch.outcome is Outcome.HOLD_FOR_REVIEW


def test_severity_is_that_of_the_most_severe_category() -> None:
    assert severity_of([Signal("reports:spam", 0.9, ""), Signal("nudity", 0.5, "")]) == 0.8
    assert severity_of([Signal("reports:terrorism", 0.6, "")]) == 1.0


def test_reports_escalate_then_hide_by_weight() -> None:
    thresholds = ReportThresholds(escalate_weight=3.0, hide_weight=6.0)
    two = tally([("spam", 1.0), ("spam", 1.0)], thresholds)
    assert (two.escalate, two.hide) == (False, False)
    three = tally([("hate", 1.0), ("hate", 1.0), ("spam", 1.0)], thresholds)
    assert (three.escalate, three.hide, three.top_reason) == (True, False, "hate")
    trusted = tally([("violence", 3.0), ("violence", 3.0)], thresholds)
    assert (trusted.escalate, trusted.hide) == (True, True)


def test_reputation_is_bounded_and_moves_with_outcomes() -> None:
    assert report_weight(None) == 1.0
    assert report_weight(100.0) == MAX_REPUTATION
    assert report_weight(-5.0) == MIN_REPUTATION
    assert updated_reputation(None, upheld=True) > 1.0
    assert updated_reputation(None, upheld=False) < 1.0
    low = None
    for _ in range(20):
        low = updated_reputation(low, upheld=False)
    assert low == MIN_REPUTATION


def test_a_fast_spreading_reel_jumps_ahead() -> None:
    slow = priority(0.6, 0.8, reach_of(views_velocity([1, 0, 2, 0, 1], 5)))
    fast = priority(0.6, 0.8, reach_of(views_velocity([5000, 8000, 9000, 12000, 20000], 5)))
    severe_slow = priority(1.0, 0.8, reach_of(0))
    assert fast > severe_slow > slow


def _random_hex(rng: random.Random) -> str:
    return f"{rng.getrandbits(256):064x}"


def _flip(hash_hex: str, bits: int, rng: random.Random) -> str:
    value = int(hash_hex, 16)
    for bit in rng.sample(range(256), bits):
        value ^= 1 << bit
    return f"{value:064x}"


def test_a_video_matches_when_80_percent_of_its_frames_are_within_31_bits() -> None:
    rng = random.Random(1)
    original = [FrameHash("vpdq", _random_hex(rng), 100, i) for i in range(10)]
    index = HashIndex()
    index.add("reel:1", original)
    index.add("reel:2", [FrameHash("vpdq", _random_hex(rng), 100, i) for i in range(10)])
    close = [FrameHash("vpdq", _flip(h.hash_hex, 20, rng), 100, h.frame) for h in original]
    matches = index.lookup(close)
    assert [(m.content_id, m.matched_fraction) for m in matches] == [("reel:1", 1.0)]
    # 7 of 10 frames close, 3 far: below 80%, no match.
    mixed = close[:7] + [FrameHash("vpdq", _random_hex(rng), 100, i) for i in range(3)]
    assert index.lookup(mixed) == []
    # 32 bits away is past the threshold.
    far = [FrameHash("vpdq", _flip(h.hash_hex, 32, rng), 100, h.frame) for h in original]
    assert index.lookup(far) == []


def test_low_quality_frames_are_ignored_and_images_match_on_one_hash() -> None:
    rng = random.Random(2)
    poster = FrameHash("pdq", _random_hex(rng), 100)
    index = HashIndex()
    index.add("img", [poster])
    assert (
        index.lookup([FrameHash("pdq", _flip(poster.hash_hex, 10, rng), 100)])[0].content_id
        == "img"
    )
    assert index.lookup([FrameHash("pdq", poster.hash_hex, 10)]) == []
    assert index.remove("img") == 1
    assert index.lookup([poster]) == []


def test_bad_hashes_are_refused() -> None:
    index = HashIndex()
    with pytest.raises(ValueError, match="64 hex"):
        index.add("x", [FrameHash("pdq", "abc", 100)])


def test_text_normalisation_undoes_leetspeak() -> None:
    assert normalise("F4CK Y0UUUU") == "fack youu"
    assert "idiot" in words_of("1d10t!!")


def test_signals_round_trip_through_json() -> None:
    signals = [Signal("nudity", 0.5, "BUTTOCKS_EXPOSED in poster.jpg")]
    assert signals_from_json(signals_to_json(signals)) == signals
