"""Signed user tokens: what app calls carry so that a caller cannot view or like as someone
else. Pure code (no I/O).

Format: `rs1.<key id>.<subject>.<expires unix s>.<signature>`, where the signature is the
unpadded base64url HMAC-SHA256 of everything before it, under the key named by the key id.
The subject is a user id (1..2^63-1) or `*`, a service token allowed to send events of
any user (load generators, trusted aggregators; minted by operators only).

Claims: a token may carry extra signed claims as a sixth part before the signature,
`rs1.<kid>.<subject>.<expiry>.<claims>.<signature>`, claims being `+`-joined names from
`KNOWN_CLAIMS`: `av` says the user's age was verified (edges serve age-restricted reels
only to such tokens). A token without claims keeps the five-part form.

Key rotation: a verifier holds several keys at once (`kid:secret` pairs); a new key is
added everywhere first, minting moves to it, and the old one is removed once the tokens
signed with it have expired.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

PREFIX = "rs1"
ANY_USER = "*"
MAX_TOKEN_CHARS = 512
MAX_USER_ID = 2**63 - 1
AGE_VERIFIED = "av"
KNOWN_CLAIMS = frozenset({AGE_VERIFIED})


class InvalidToken(ValueError):
    """The token is malformed, unsigned by a known key, or expired (message says which)."""


@dataclass(frozen=True)
class TokenClaims:
    key_id: str
    user_id: int | None
    """None for a service token (subject `*`)."""
    expires_s: int
    age_verified: bool = False
    """The `av` claim: the user's age was verified (age-restricted reels)."""

    def allows(self, user_id: int) -> bool:
        return self.user_id is None or self.user_id == user_id


def parse_keys(entries: tuple[str, ...] | list[str]) -> dict[str, bytes]:
    """`kid:secret` entries (secret as text, at least 16 characters) -> {kid: secret}."""
    keys: dict[str, bytes] = {}
    for entry in entries:
        key_id, sep, secret = entry.partition(":")
        if not sep or not key_id.isalnum() or len(secret) < 16:
            raise ValueError(
                "token keys are kid:secret with an alphanumeric kid and a secret of at least"
                f" 16 characters; got an entry for {key_id!r}"
            )
        keys[key_id] = secret.encode()
    return keys


def _signature(secret: bytes, payload: str) -> str:
    digest = hmac.new(secret, payload.encode(), hashlib.sha256).digest()
    return base64.urlsafe_b64encode(digest).rstrip(b"=").decode()


def mint(
    keys: Mapping[str, bytes],
    key_id: str,
    subject: int | str,
    expires_s: int,
    *,
    age_verified: bool = False,
) -> str:
    """A token for `subject` (a user id or `*`) signed with key `key_id`."""
    if key_id not in keys:
        raise ValueError(f"no key {key_id!r}")
    if subject != ANY_USER and not (isinstance(subject, int) and 0 < subject <= MAX_USER_ID):
        raise ValueError("the subject is a user id in [1, 2^63) or '*'")
    payload = f"{PREFIX}.{key_id}.{subject}.{expires_s}"
    if age_verified:
        payload += f".{AGE_VERIFIED}"
    return f"{payload}.{_signature(keys[key_id], payload)}"


def verify(keys: Mapping[str, bytes], token: str, now_s: float) -> TokenClaims:
    """The claims of a valid token.

    Raises:
        InvalidToken: with the reason.
    """
    if len(token) > MAX_TOKEN_CHARS:
        raise InvalidToken("token too long")
    parts = token.split(".")
    if len(parts) not in (5, 6) or parts[0] != PREFIX:
        raise InvalidToken(
            f"malformed token: expected {PREFIX}.<kid>.<user>.<expiry>[.<claims>].<sig>"
        )
    _, key_id, subject, expires_text = parts[:4]
    signature = parts[-1]
    claims = set(parts[4].split("+")) if len(parts) == 6 else set()
    secret = keys.get(key_id)
    if secret is None:
        raise InvalidToken(f"unknown key id {key_id[:32]!r} (rotated out?)")
    payload = token.rsplit(".", 1)[0]
    if not hmac.compare_digest(_signature(secret, payload), signature):
        raise InvalidToken("bad signature")
    if not expires_text.isdigit():
        raise InvalidToken("malformed expiry")
    expires_s = int(expires_text)
    if expires_s <= now_s:
        raise InvalidToken("token expired")
    if not claims <= KNOWN_CLAIMS:
        raise InvalidToken(f"unknown claims {sorted(claims - KNOWN_CLAIMS)!r}"[:120])
    age_verified = AGE_VERIFIED in claims
    if subject == ANY_USER:
        return TokenClaims(key_id, None, expires_s, age_verified)
    if not subject.isdigit() or not 0 < int(subject) <= MAX_USER_ID:
        raise InvalidToken("malformed subject")
    return TokenClaims(key_id, int(subject), expires_s, age_verified)


def bearer_token(metadata: Iterable[tuple[str, str | bytes]] | None) -> str | None:
    """The token of an `authorization: Bearer <token>` metadata entry, if any."""
    for key, value in metadata or ():
        if key == "authorization":
            text = value.decode("latin-1") if isinstance(value, bytes) else value
            scheme, _, token = text.partition(" ")
            if scheme.lower() == "bearer":
                return token.strip()
    return None
