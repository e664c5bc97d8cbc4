"""Who may fetch a reel's HLS files: the reel directory's state of the reel and the viewer's
signed user token (reelstream/user_tokens.py), read from `Authorization: Bearer <token>`.

- removed -> 410; unknown state (origin unreachable, reel never seen) -> 503;
- age-restricted -> only a valid token with the age-verified claim; otherwise 403 with the
  reason (no token, invalid token, token without the claim, or no token keys configured);
- anything else (published, unknown reel, ...) -> allowed; the media path decides the rest.

The verdict itself is pure (`gate_verdict`); `AgeGate` adds the directory lookup.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from dataclasses import dataclass

from edge.event_validation import ReelInfo
from edge.reel_directory import ASSUMED, ReelDirectory
from reelstream.user_tokens import InvalidToken, verify


@dataclass(frozen=True)
class GateVerdict:
    status: int
    """200 allowed; otherwise the HTTP status to answer."""
    reason: str
    restricted: bool
    """An age-restricted reel: allowed answers must not be cached publicly."""

    @property
    def allowed(self) -> bool:
        return self.status == 200


ALLOWED = GateVerdict(200, "", restricted=False)


def bearer_of(authorization: str | None) -> str | None:
    if authorization is None:
        return None
    scheme, _, token = authorization.partition(" ")
    return token.strip() if scheme.lower() == "bearer" and token.strip() else None


def gate_verdict(
    info: ReelInfo | None,
    authorization: str | None,
    token_keys: Mapping[str, bytes],
    now_s: float,
) -> GateVerdict:
    """May a request with this Authorization header fetch files of a reel in this state?"""
    if info is ASSUMED:
        return GateVerdict(503, "the reel's state cannot be checked (origin unreachable)", False)
    if info is None:
        return ALLOWED
    if info.removed:
        return GateVerdict(410, "the reel was removed", info.age_restricted)
    if not info.age_restricted:
        return ALLOWED
    token = bearer_of(authorization)
    if token is None:
        return GateVerdict(
            403, "age-restricted: send 'Authorization: Bearer <age-verified user token>'", True
        )
    if not token_keys:
        return GateVerdict(403, "age-restricted: this edge verifies no user tokens", True)
    try:
        claims = verify(token_keys, token, now_s)
    except InvalidToken as exc:
        return GateVerdict(403, f"age-restricted: invalid token: {exc}", True)
    if not claims.age_verified:
        return GateVerdict(403, "age-restricted: the token has no age-verified claim", True)
    return GateVerdict(200, "", restricted=True)


class AgeGate:
    def __init__(self, directory: ReelDirectory, token_keys: Mapping[str, bytes]) -> None:
        self._directory = directory
        self._token_keys = token_keys

    async def check(self, reel_id: int, authorization: str | None) -> GateVerdict:
        info = (await self._directory.lookup((reel_id,)))[reel_id]
        return gate_verdict(info, authorization, self._token_keys, time.time())
