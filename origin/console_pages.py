"""HTML of the moderator console. Pure code: every value from a caller, a reel (captions and
hashtags are user input) or a signal is escaped with `html.escape(quote=True)` where it is
placed; no inline script (the console's CSP forbids scripts altogether)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from html import escape

STYLE = """
body{font-family:system-ui,sans-serif;margin:1.5rem;max-width:70rem}
table{border-collapse:collapse}td,th{border:1px solid #ccc;padding:.3rem;vertical-align:top}
.item{border:1px solid #999;margin:1rem 0;padding:.8rem;display:flex;gap:1rem}
.item img{width:160px;height:auto;background:#eee}.notice{background:#e8f4e8;padding:.5rem}
.error{background:#fbe9e9;padding:.5rem}label{display:block;margin:.4rem 0}
"""


@dataclass(frozen=True)
class SignalView:
    name: str
    score: float
    reason: str


@dataclass(frozen=True)
class ItemView:
    item_id: str
    reel_id: int
    priority: float
    is_appeal: bool
    claimed_by: str
    caption: str
    hashtags: tuple[str, ...]
    state: str
    age_restricted: bool
    signals: tuple[SignalView, ...]


def _e(value: object) -> str:
    return escape(str(value), quote=True)


def _page(title: str, body: str) -> str:
    return (
        '<!doctype html><html lang="en"><head><meta charset="utf-8">'
        f"<title>{_e(title)}</title>"
        '<link rel="stylesheet" href="/console/style.css"></head>'
        f"<body>{body}</body></html>"
    )


def login_page(login_csrf: str, error: str = "") -> str:
    problem = f'<p class="error" id="error">{_e(error)}</p>' if error else ""
    return _page(
        "Moderator login",
        "<h1>Moderator console</h1>"
        f"{problem}"
        '<form method="post" action="/console/login">'
        f'<input type="hidden" name="csrf_token" value="{_e(login_csrf)}">'
        '<label>Name <input name="name" autocomplete="username" required maxlength="64"></label>'
        '<label>Password <input name="password" type="password" autocomplete="current-password"'
        ' required maxlength="256"></label>'
        '<button type="submit" id="login">Log in</button></form>',
    )


def _signals(signals: Sequence[SignalView]) -> str:
    rows = "".join(
        f"<tr><td>{_e(s.name)}</td><td>{s.score:.2f}</td>"
        f'<td class="reason">{_e(s.reason)}</td></tr>'
        for s in signals
    )
    return f"<table><tr><th>signal</th><th>score</th><th>reason</th></tr>{rows}</table>"


def _item(item: ItemView, csrf_token: str) -> str:
    flags = " (appeal)" if item.is_appeal else ""
    if item.age_restricted:
        flags += " (age-restricted)"
    held = f"<p>claimed by {_e(item.claimed_by)}</p>" if item.claimed_by else ""
    tags = " ".join(item.hashtags)
    buttons = "".join(
        f'<button type="submit" name="decision" value="{value}">{label}</button> '
        for value, label in (
            ("keep", "Keep"),
            ("remove", "Remove"),
            ("age_restrict", "Age-restrict"),
        )
    )
    return (
        f'<section class="item" id="item-{_e(item.item_id)}" data-reel="{item.reel_id}">'
        f'<img src="/console/reels/{item.reel_id}/poster.jpg" alt="poster of reel {item.reel_id}">'
        f"<div><h2>Reel {item.reel_id}{_e(flags)}</h2>"
        f"<p>state {_e(item.state)} · priority {item.priority:.3f}</p>"
        f'<p class="caption">{_e(item.caption)} {_e(tags)}</p>{held}'
        f"{_signals(item.signals)}"
        '<form method="post" action="/console/decide">'
        f'<input type="hidden" name="csrf_token" value="{_e(csrf_token)}">'
        f'<input type="hidden" name="item_id" value="{_e(item.item_id)}">'
        '<label>Reason <input name="reason" required maxlength="500"></label>'
        f"{buttons}</form></div></section>"
    )


def queue_page(
    moderator: str,
    csrf_token: str,
    items: Sequence[ItemView],
    total_open: int,
    notice: str = "",
) -> str:
    shown = f"{len(items)} of {total_open} open items" if items else "The queue is empty."
    note = f'<p class="notice" id="notice">{_e(notice)}</p>' if notice else ""
    return _page(
        "Review queue",
        f"<h1>Review queue</h1><p>Logged in as <b>{_e(moderator)}</b>.</p>"
        '<form method="post" action="/console/logout">'
        f'<input type="hidden" name="csrf_token" value="{_e(csrf_token)}">'
        '<button type="submit">Log out</button></form>'
        f"{note}<p>{shown}</p>" + "".join(_item(item, csrf_token) for item in items),
    )


def message_page(title: str, message: str) -> str:
    return _page(
        title,
        f'<h1>{_e(title)}</h1><p class="error" id="error">{_e(message)}</p>'
        '<p><a href="/console">Back to the queue</a></p>',
    )
