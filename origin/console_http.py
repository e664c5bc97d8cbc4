"""The moderator console: an aiohttp server of the origin (beside its gRPC server) listing the
review queue with posters, signal scores and reasons, and deciding items through the
moderation service (review_client.py).

Routes (all under /console):
- GET  /login, POST /login    login form (name + password, console_auth.py); a login CSRF
                              token is a double-submit cookie (no session exists yet)
- GET  /                      the queue (no session: 303 to the login page)
- POST /decide                item_id, decision (keep | remove | age_restrict), reason
- POST /logout
- GET  /reels/{id}/poster.jpg the reel's poster
- GET  /style.css

Statuses: 401 no valid session on a POST or a poster (or a wrong password), 403 a POST
without the session's CSRF token, 400 malformed form input (with the reason), 404/409 the
item is gone or held by someone else, 503 the moderation service is unreachable.
Cookies are HttpOnly and SameSite=Strict (Secure when `console_secure_cookies`); pages are
no-store and carry a CSP without scripts.
"""

from __future__ import annotations

import asyncio
import logging
import re
import secrets
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from urllib.parse import quote

from aiohttp import web

from origin.console_auth import (
    NAME,
    PasswordHash,
    Session,
    SessionStore,
    check_password,
    csrf_matches,
)
from origin.console_pages import (
    STYLE,
    ItemView,
    SignalView,
    login_page,
    message_page,
    queue_page,
)
from origin.media_names import POSTER
from origin.media_store import MediaStore
from origin.reel_catalog import ReelCatalog
from origin.review_client import DECISIONS, ReviewClient, ReviewRefused
from protos import moderation_pb2, origin_pb2

logger = logging.getLogger(__name__)

SESSION_COOKIE = "rs_console_session"
LOGIN_CSRF_COOKIE = "rs_console_login"
MAX_FORM_BYTES = 16 * 1024
MAX_REASON_CHARS = 500
QUEUE_LIMIT = 100
PASSWORD_CHECKS_AT_ONCE = 2  # scrypt is CPU and 16 MiB each
ITEM_ID = re.compile(r"[0-9a-f]{32}")
SECURITY_HEADERS = {
    "Content-Security-Policy": "default-src 'none'; img-src 'self'; style-src 'self';"
    " form-action 'self'; frame-ancestors 'none'; base-uri 'none'",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "X-Frame-Options": "DENY",
}
Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


def _html(text: str, status: int = 200) -> web.Response:
    headers = {**SECURITY_HEADERS, "Cache-Control": "no-store"}
    return web.Response(text=text, status=status, content_type="text/html", headers=headers)


def _refuse(status: int, title: str, message: str) -> web.Response:
    return _html(message_page(title, message), status)


def _see_other(location: str) -> web.Response:
    return web.Response(status=303, headers={"Location": location, "Cache-Control": "no-store"})


class ModeratorConsole:
    def __init__(
        self,
        moderators: dict[str, PasswordHash],
        reviews: ReviewClient,
        catalog: ReelCatalog,
        store: MediaStore,
        *,
        session_ttl_s: float,
        max_sessions: int,
        secure_cookies: bool,
    ) -> None:
        self._moderators = moderators
        self._reviews = reviews
        self._catalog = catalog
        self._store = store
        self._sessions = SessionStore(session_ttl_s, max_sessions)
        self._session_ttl_s = session_ttl_s
        self._secure = secure_cookies
        self._password_checks = asyncio.Semaphore(PASSWORD_CHECKS_AT_ONCE)

    def app(self) -> web.Application:
        app = web.Application(client_max_size=MAX_FORM_BYTES)
        app.router.add_get("/console/login", self.login_form)
        app.router.add_post("/console/login", self.login)
        app.router.add_get("/console", self.queue)
        app.router.add_get("/console/", self.queue)
        app.router.add_post("/console/decide", self._with_session(self.decide))
        app.router.add_post("/console/logout", self._with_session(self.logout))
        app.router.add_get("/console/reels/{reel_id}/poster.jpg", self.poster)
        app.router.add_get("/console/style.css", self.style)
        return app

    # --- sessions
    def _cookie(self, response: web.StreamResponse, name: str, value: str, max_age: int) -> None:
        response.set_cookie(
            name, value, max_age=max_age, path="/console", httponly=True, samesite="Strict",
            secure=self._secure,
        )  # fmt: skip

    def _session(self, request: web.Request) -> Session | None:
        return self._sessions.get(request.cookies.get(SESSION_COOKIE), time.time())

    def _with_session(
        self,
        handler: Callable[[web.Request, Session, dict[str, str]], Awaitable[web.StreamResponse]],
    ) -> Handler:
        """A POST handler behind the session and CSRF checks (401, 403) with its form."""

        async def checked(request: web.Request) -> web.StreamResponse:
            session = self._session(request)
            if session is None:
                return _refuse(401, "Not logged in", "log in first (your session may have expired)")
            form = await _form(request)
            if form is None:
                return _refuse(400, "Bad form", "expected an urlencoded form of at most 16 KiB")
            if not csrf_matches(session, form.get("csrf_token")):
                return _refuse(
                    403, "Refused", "missing or wrong CSRF token: reload the console and retry"
                )
            return await handler(request, session, form)

        return checked

    async def login_form(self, request: web.Request) -> web.StreamResponse:
        if self._session(request) is not None:
            return _see_other("/console")
        return self._login_page(200, "")

    def _login_page(self, status: int, error: str) -> web.Response:
        token = secrets.token_urlsafe(32)
        response = _html(login_page(token, error), status)
        self._cookie(response, LOGIN_CSRF_COOKIE, token, 3600)
        return response

    async def login(self, request: web.Request) -> web.StreamResponse:
        form = await _form(request)
        if form is None:
            return _refuse(400, "Bad form", "expected an urlencoded form of at most 16 KiB")
        cookie = request.cookies.get(LOGIN_CSRF_COOKIE)
        submitted = form.get("csrf_token", "")
        if not cookie or not secrets.compare_digest(cookie.encode(), submitted.encode()):
            return _refuse(
                403, "Refused", "missing or wrong login CSRF token: reload the login page"
            )
        name, password = form.get("name", ""), form.get("password", "")
        if not NAME.fullmatch(name) or not password:
            return self._login_page(400, "enter a moderator name and a password")
        async with self._password_checks:
            valid = await asyncio.to_thread(check_password, self._moderators, name, password)
        if not valid:
            logger.warning("console login failed", extra={"fields": {"name": name}})
            return self._login_page(401, "wrong name or password")
        session_id, _ = self._sessions.open(name, time.time())
        logger.info("console login", extra={"fields": {"moderator": name}})
        response = _see_other("/console")
        self._cookie(response, SESSION_COOKIE, session_id, int(self._session_ttl_s))
        response.del_cookie(LOGIN_CSRF_COOKIE, path="/console")
        return response

    async def logout(
        self, request: web.Request, session: Session, form: dict[str, str]
    ) -> web.StreamResponse:
        self._sessions.close(request.cookies.get(SESSION_COOKIE))
        response = _see_other("/console/login")
        response.del_cookie(SESSION_COOKIE, path="/console")
        return response

    # --- the queue
    async def queue(self, request: web.Request) -> web.StreamResponse:
        session = self._session(request)
        if session is None:
            return _see_other("/console/login")
        try:
            listing = await self._reviews.queue(QUEUE_LIMIT)
        except ReviewRefused as exc:
            return _refuse(exc.status, "Queue unavailable", str(exc))
        reels = await asyncio.gather(*(self._catalog.get(q.item.reel_id) for q in listing.items))
        items = [_item_view(q, reel) for q, reel in zip(listing.items, reels, strict=True)]
        notice = request.query.get("notice", "")[:300]
        return _html(
            queue_page(session.moderator, session.csrf_token, items, listing.total_open, notice)
        )

    async def decide(
        self, request: web.Request, session: Session, form: dict[str, str]
    ) -> web.StreamResponse:
        item_id = form.get("item_id", "")
        decision = form.get("decision", "")
        reason = form.get("reason", "").strip()
        problem = (
            "item_id must be a review item id (32 hex digits)" if not ITEM_ID.fullmatch(item_id)
            else f"decision must be one of {', '.join(DECISIONS)}" if decision not in DECISIONS
            else "a decision needs a reason" if not reason
            else f"the reason has at most {MAX_REASON_CHARS} characters"
            if len(reason) > MAX_REASON_CHARS
            else ""
        )  # fmt: skip
        if problem:
            return _refuse(400, "Bad decision", problem)
        try:
            audit_id = await self._reviews.decide(session.moderator, item_id, decision, reason)
        except ReviewRefused as exc:
            return _refuse(exc.status, "Not decided", str(exc))
        logger.info(
            "console decision",
            extra={"fields": {"moderator": session.moderator, "item": item_id,
                              "decision": decision, "audit": audit_id}},
        )  # fmt: skip
        notice = f"{decision} applied to item {item_id} (audit {audit_id})"
        return _see_other(f"/console?notice={quote(notice)}")

    async def poster(self, request: web.Request) -> web.StreamResponse:
        if self._session(request) is None:
            return _refuse(401, "Not logged in", "log in first")
        text = request.match_info["reel_id"]
        if not text.isdigit() or len(text) > 20 or not 0 < int(text) < 2**64:
            return _refuse(400, "Bad reel id", "a reel id is a positive integer")
        info = await self._catalog.serving_info(int(text))
        if info is None or not info.media_key:
            return _refuse(404, "No poster", f"reel {text} has no media")
        try:
            body = await asyncio.to_thread(_read, self._store.file_path(info.media_key, POSTER))
        except (OSError, ValueError):
            return _refuse(404, "No poster", f"reel {text} has no poster")
        return web.Response(
            body=body,
            content_type="image/jpeg",
            headers={**SECURITY_HEADERS, "Cache-Control": "private, max-age=300"},
        )

    async def style(self, request: web.Request) -> web.StreamResponse:
        return web.Response(
            text=STYLE,
            content_type="text/css",
            headers={**SECURITY_HEADERS, "Cache-Control": "private, max-age=3600"},
        )


def _read(path: Path) -> bytes:
    return path.read_bytes()


async def _form(request: web.Request) -> dict[str, str] | None:
    if request.content_type != "application/x-www-form-urlencoded":
        return None
    try:
        data = await request.post()
    except (web.HTTPRequestEntityTooLarge, ValueError, UnicodeDecodeError):
        return None
    return {key: value for key, value in data.items() if isinstance(value, str)}


def _item_view(queued: moderation_pb2.QueuedItem, reel: origin_pb2.Reel | None) -> ItemView:
    item = queued.item
    state = "unknown"
    if reel is not None:
        state = origin_pb2.ReelState.Name(reel.state).removeprefix("REEL_STATE_").lower()
    return ItemView(
        item_id=item.item_id,
        reel_id=item.reel_id,
        priority=item.priority,
        is_appeal=item.is_appeal,
        claimed_by=queued.claimed_by,
        caption=reel.caption if reel is not None else "",
        hashtags=tuple(reel.hashtags) if reel is not None else (),
        state=state,
        age_restricted=bool(reel is not None and reel.age_restricted),
        signals=tuple(SignalView(s.name, s.score, s.reason) for s in item.signals),
    )


class ConsoleServer:
    """Runs the console app on `address` (aiohttp's AppRunner; stopped in the origin's drain)."""

    def __init__(self, app: web.Application, address: str, shutdown_timeout_s: float) -> None:
        host, _, port = address.rpartition(":")
        self._host = host.strip("[]")
        self._port = int(port)
        self._runner = web.AppRunner(
            app, access_log=None, handle_signals=False, shutdown_timeout=shutdown_timeout_s
        )
        self._started = False
        self.port = 0

    async def start(self) -> None:
        await self._runner.setup()
        site = web.TCPSite(self._runner, self._host, self._port)
        await site.start()
        self._started = True
        self.port = int(self._runner.addresses[0][1])
        logger.info("moderator console", extra={"fields": {"host": self._host, "port": self.port}})

    async def stop(self) -> None:
        if self._started:
            self._started = False
            await self._runner.cleanup()
