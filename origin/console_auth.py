"""Who may use the moderator console: moderator passwords, login sessions and CSRF tokens.
Pure code (no I/O but reading the moderator file; the caller runs `check_password` in an
executor, scrypt being deliberately slow).

- Moderators are configured in one file (`console_moderators_file`), one per line:
  `<name>:scrypt:<n>:<r>:<p>:<salt hex>:<key hex>` (made by `python -m
  origin.console_passwords <name>`); `#` comments and blank lines are ignored.
- A login opens a session: a random 256-bit id (the HttpOnly, SameSite=Strict cookie) mapped
  in memory to the moderator, a random CSRF token and an expiry. Sessions live in the origin
  process (a restart logs everyone out); at most `max_sessions`, the oldest dropped first.
- Every POST carries the session's CSRF token in a form field (synchronizer token); it is
  compared in constant time.
"""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets
from collections import OrderedDict
from dataclasses import dataclass
from pathlib import Path

NAME = re.compile(r"[A-Za-z0-9_.-]{1,64}")
SCRYPT_N, SCRYPT_R, SCRYPT_P = 2**14, 8, 1
KEY_BYTES = 32
MAX_PASSWORD_CHARS = 256
# Compared against when the name is unknown, so a wrong name costs as much as a wrong password.
_DUMMY_SALT = bytes(16)


class ModeratorFileError(ValueError):
    """The moderator file is malformed (the message names the line)."""


@dataclass(frozen=True)
class PasswordHash:
    n: int
    r: int
    p: int
    salt: bytes
    key: bytes

    def entry(self, name: str) -> str:
        return f"{name}:scrypt:{self.n}:{self.r}:{self.p}:{self.salt.hex()}:{self.key.hex()}"


def _scrypt(password: str, salt: bytes, n: int, r: int, p: int) -> bytes:
    return hashlib.scrypt(
        password.encode(), salt=salt, n=n, r=r, p=p, dklen=KEY_BYTES, maxmem=64 * 1024 * 1024
    )


def hash_password(password: str) -> PasswordHash:
    salt = secrets.token_bytes(16)
    return PasswordHash(
        SCRYPT_N, SCRYPT_R, SCRYPT_P, salt, _scrypt(password, salt, SCRYPT_N, SCRYPT_R, SCRYPT_P)
    )


def parse_moderators(text: str) -> dict[str, PasswordHash]:
    moderators: dict[str, PasswordHash] = {}
    for number, raw in enumerate(text.splitlines(), start=1):
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        parts = line.split(":")
        try:
            name, scheme, n, r, p, salt, key = parts
            if scheme != "scrypt" or not NAME.fullmatch(name):
                raise ValueError
            entry = PasswordHash(int(n), int(r), int(p), bytes.fromhex(salt), bytes.fromhex(key))
        except ValueError:
            raise ModeratorFileError(
                f"line {number}: expected <name>:scrypt:<n>:<r>:<p>:<salt hex>:<key hex>"
                " (make one with `python -m origin.console_passwords <name>`)"
            ) from None
        moderators[name] = entry
    return moderators


def load_moderators(path: Path) -> dict[str, PasswordHash]:
    """Raises:
    ModeratorFileError: unreadable or malformed."""
    try:
        return parse_moderators(path.read_text())
    except OSError as exc:
        raise ModeratorFileError(f"cannot read the moderator file {path}: {exc}") from None


def check_password(moderators: dict[str, PasswordHash], name: str, password: str) -> bool:
    """True when `name` is a moderator and `password` is theirs (slow on purpose: scrypt)."""
    entry = moderators.get(name)
    if entry is None or len(password) > MAX_PASSWORD_CHARS:
        _scrypt(password[:MAX_PASSWORD_CHARS], _DUMMY_SALT, SCRYPT_N, SCRYPT_R, SCRYPT_P)
        return False
    return hmac.compare_digest(_scrypt(password, entry.salt, entry.n, entry.r, entry.p), entry.key)


@dataclass(frozen=True)
class Session:
    moderator: str
    csrf_token: str
    expires_s: float


class SessionStore:
    def __init__(self, ttl_s: float, max_sessions: int) -> None:
        self._ttl_s = ttl_s
        self._max_sessions = max_sessions
        self._sessions: OrderedDict[str, Session] = OrderedDict()

    def open(self, moderator: str, now_s: float) -> tuple[str, Session]:
        """A new session (id, session) for a moderator who just logged in."""
        session_id = secrets.token_urlsafe(32)
        session = Session(moderator, secrets.token_urlsafe(32), now_s + self._ttl_s)
        self._sessions[session_id] = session
        while len(self._sessions) > self._max_sessions:
            self._sessions.popitem(last=False)
        return session_id, session

    def get(self, session_id: str | None, now_s: float) -> Session | None:
        if not session_id:
            return None
        session = self._sessions.get(session_id)
        if session is None:
            return None
        if session.expires_s <= now_s:
            del self._sessions[session_id]
            return None
        return session

    def close(self, session_id: str | None) -> None:
        if session_id:
            self._sessions.pop(session_id, None)

    def __len__(self) -> int:
        return len(self._sessions)


def csrf_matches(session: Session, submitted: str | None) -> bool:
    return submitted is not None and hmac.compare_digest(
        session.csrf_token.encode(), submitted.encode()
    )
