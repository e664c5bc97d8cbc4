"""Who may fetch an age-restricted reel's HLS files (edge/age_gate.py, pure verdict)."""

from __future__ import annotations

import pytest

from edge.age_gate import gate_verdict
from edge.event_validation import ReelInfo
from edge.reel_directory import ASSUMED
from reelstream.user_tokens import mint, parse_keys

KEYS = parse_keys(["k1:first-secret-0123456789"])
RESTRICTED = ReelInfo(removed=False, duration_ms=4000, age_restricted=True)
PUBLISHED = ReelInfo(removed=False, duration_ms=4000)
NOW = 1_000


def _bearer(**claims: bool) -> str:
    return "Bearer " + mint(KEYS, "k1", 42, 2_000, **claims)


def test_a_published_reel_is_served_to_anyone_without_a_token() -> None:
    verdict = gate_verdict(PUBLISHED, None, KEYS, NOW)
    assert (verdict.status, verdict.restricted) == (200, False)


def test_an_age_verified_token_opens_a_restricted_reel_privately() -> None:
    verdict = gate_verdict(RESTRICTED, _bearer(age_verified=True), KEYS, NOW)
    assert (verdict.status, verdict.restricted) == (200, True)


@pytest.mark.parametrize(
    ("authorization", "reason"),
    [
        (None, "send 'Authorization: Bearer"),
        ("Basic abc", "send 'Authorization: Bearer"),
        ("Bearer rs1.k1.42.2000.av.forged", "invalid token: bad signature"),
        ("Bearer " + mint(KEYS, "k1", 42, 500, age_verified=True), "invalid token: token expired"),
        ("Bearer " + mint(KEYS, "k1", 42, 2_000), "no age-verified claim"),
    ],
)
def test_a_restricted_reel_is_refused_with_the_reason(
    authorization: str | None, reason: str
) -> None:
    verdict = gate_verdict(RESTRICTED, authorization, KEYS, NOW)
    assert verdict.status == 403
    assert reason in verdict.reason


def test_without_token_keys_a_restricted_reel_is_served_to_nobody() -> None:
    verdict = gate_verdict(RESTRICTED, _bearer(age_verified=True), {}, NOW)
    assert verdict.status == 403
    assert "verifies no user tokens" in verdict.reason


def test_removed_unknown_and_unreachable_states() -> None:
    assert gate_verdict(ReelInfo(removed=True, duration_ms=0), None, KEYS, NOW).status == 410
    assert gate_verdict(None, None, KEYS, NOW).status == 200  # the media path answers 404
    assert gate_verdict(ASSUMED, None, KEYS, NOW).status == 503
    # An equal but distinct state is a real answer, not the "unreachable" marker.
    assert gate_verdict(ReelInfo(removed=False, duration_ms=0), None, KEYS, NOW).status == 200
