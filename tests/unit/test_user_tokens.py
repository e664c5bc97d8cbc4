"""Signed user tokens: binding, key rotation, expiry and tampering."""

from __future__ import annotations

import base64
import hashlib
import hmac

import pytest
from hypothesis import given
from hypothesis import strategies as st

from reelstream import token_cli
from reelstream.user_tokens import InvalidToken, bearer_token, mint, parse_keys, verify

KEYS = parse_keys(["k1:first-secret-0123456789", "k2:second-secret-0123456789"])


def test_a_token_binds_its_user_under_either_active_key() -> None:
    for key_id in ("k1", "k2"):
        claims = verify(KEYS, mint(KEYS, key_id, 42, 2_000), now_s=1_000)
        assert claims.user_id == 42
        assert claims.allows(42)
        assert not claims.allows(43)


def test_a_service_token_allows_any_user() -> None:
    assert verify(KEYS, mint(KEYS, "k1", "*", 2_000), now_s=1_000).allows(7)


@pytest.mark.parametrize(
    ("token", "reason"),
    [
        (mint(KEYS, "k1", 42, 1_000), "expired"),
        (mint(KEYS, "k1", 42, 2_000).replace(".42.", ".43."), "bad signature"),
        (mint(parse_keys(["k3:rotated-out-0123456789"]), "k3", 42, 2_000), "unknown key"),
        ("rs1.k1.42", "malformed"),
        ("x" * 600, "too long"),
    ],
)
def test_bad_tokens_are_refused_with_a_reason(token: str, reason: str) -> None:
    with pytest.raises(InvalidToken, match=reason):
        verify(KEYS, token, now_s=1_500)


@given(st.text(max_size=200))
def test_no_string_verifies_or_crashes(token: str) -> None:
    with pytest.raises(InvalidToken):
        verify(KEYS, token, now_s=0)


def test_bearer_metadata_and_short_secrets() -> None:
    assert bearer_token((("x", "y"), ("authorization", "Bearer abc"))) == "abc"
    assert bearer_token((("authorization", "Basic abc"),)) is None
    with pytest.raises(ValueError, match="16 characters"):
        parse_keys(["k1:short"])


def test_the_cli_mints_a_token_the_keys_verify(capsys: pytest.CaptureFixture[str]) -> None:
    keys = "k1:first-secret-0123456789"
    assert token_cli.main(["--user", "9", "--keys", keys, "--ttl", "60"]) == 0
    token = capsys.readouterr().out.strip()
    assert verify(parse_keys([keys]), token, now_s=0).user_id == 9


def test_the_load_generator_attaches_its_token(monkeypatch: pytest.MonkeyPatch) -> None:
    from loadtest.auth_token import BearerTokenInterceptor, with_token

    sent: list[object] = []
    interceptor = BearerTokenInterceptor("tok")

    class Details:
        method, timeout, metadata, credentials = "/m", 1.0, (("a", "b"),), None

    interceptor.intercept_unary_unary(
        lambda details, request: sent.append(details.metadata),
        Details(),  # type: ignore[arg-type]
        None,
    )
    assert sent == [[("a", "b"), ("authorization", "Bearer tok")]]
    monkeypatch.delenv("REELSTREAM_LOADTEST_TOKEN", raising=False)
    channel = object()
    assert with_token(channel) is channel  # type: ignore[arg-type]


def test_the_age_verified_claim_is_signed_and_read_back() -> None:
    plain = verify(KEYS, mint(KEYS, "k1", 42, 2_000), now_s=1_000)
    verified = verify(KEYS, mint(KEYS, "k1", 42, 2_000, age_verified=True), now_s=1_000)
    assert (plain.age_verified, verified.age_verified) == (False, True)
    assert verified.user_id == 42


def test_a_claim_added_to_a_signed_token_breaks_its_signature() -> None:
    kid, user, expiry, signature = mint(KEYS, "k1", 42, 2_000).split(".")[1:]
    forged = f"rs1.{kid}.{user}.{expiry}.av.{signature}"
    with pytest.raises(InvalidToken, match="bad signature"):
        verify(KEYS, forged, now_s=1_000)


def test_an_unknown_claim_is_refused() -> None:
    payload = "rs1.k1.42.2000.admin"
    token = f"{payload}.{_sign('first-secret-0123456789', payload)}"
    with pytest.raises(InvalidToken, match="unknown claims"):
        verify(KEYS, token, now_s=1_000)


def _sign(secret: str, payload: str) -> str:
    digest = hmac.new(secret.encode(), payload.encode(), hashlib.sha256).digest()
    return base64.urlsafe_b64encode(digest).rstrip(b"=").decode()
