"""Moderator console logic without servers: passwords, sessions, CSRF and page escaping."""

from __future__ import annotations

import pytest

from origin.console_auth import (
    ModeratorFileError,
    SessionStore,
    check_password,
    csrf_matches,
    hash_password,
    parse_moderators,
)
from origin.console_pages import ItemView, SignalView, login_page, queue_page

ALICE = hash_password("correct horse battery staple").entry("alice")


def test_only_the_right_password_of_a_listed_moderator_logs_in() -> None:
    moderators = parse_moderators(f"# moderators\n\n{ALICE}\n")
    assert check_password(moderators, "alice", "correct horse battery staple")
    assert not check_password(moderators, "alice", "correct horse battery stapler")
    assert not check_password(moderators, "bob", "correct horse battery staple")
    assert not check_password(moderators, "alice", "x" * 10_000)


@pytest.mark.parametrize(
    "line", ["alice:plain:secret", "al ice:scrypt:16384:8:1:00:00", "alice:scrypt:n:8:1:00:00"]
)
def test_a_malformed_moderator_line_is_named(line: str) -> None:
    with pytest.raises(ModeratorFileError, match="line 2"):
        parse_moderators(f"{ALICE}\n{line}\n")


def test_sessions_expire_are_bounded_and_close() -> None:
    store = SessionStore(ttl_s=60, max_sessions=2)
    first, session = store.open("alice", now_s=0)
    assert store.get(first, now_s=59) == session
    assert store.get(first, now_s=60) is None
    second, _ = store.open("alice", now_s=100)
    third, _ = store.open("bob", now_s=100)
    fourth, _ = store.open("carol", now_s=100)
    assert store.get(second, now_s=100) is None  # the oldest was dropped
    assert store.get(third, now_s=100) is not None
    store.close(fourth)
    assert store.get(fourth, now_s=100) is None
    assert store.get(None, now_s=100) is None


def test_csrf_token_must_be_the_sessions_own() -> None:
    store = SessionStore(ttl_s=60, max_sessions=10)
    _, mine = store.open("alice", now_s=0)
    _, theirs = store.open("alice", now_s=0)
    assert csrf_matches(mine, mine.csrf_token)
    assert not csrf_matches(mine, theirs.csrf_token)
    assert not csrf_matches(mine, None)
    assert not csrf_matches(mine, "")


def test_pages_escape_every_user_supplied_value() -> None:
    hostile = '"><script>alert(1)</script>'
    item = ItemView(
        item_id="ab" * 16, reel_id=5, priority=1.5, is_appeal=False, claimed_by=hostile,
        caption=hostile, hashtags=(hostile,), state="in_review", age_restricted=False,
        signals=(SignalView(hostile, 0.9, hostile),),
    )  # fmt: skip
    page = queue_page(hostile, hostile, [item], 1, notice=hostile)
    assert "<script>" not in page
    assert hostile not in page
    # moderator, 2 CSRF fields, notice, caption, hashtag, claimer, signal name and reason
    assert page.count("&quot;&gt;&lt;script&gt;") == 9
    assert "<script>" not in login_page(hostile, error=hostile)
