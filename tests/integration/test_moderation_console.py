"""The moderator console, age restriction and the shared review queue, through real processes
(two moderation services, an origin with its console, an edge, Cassandra):

- the console: unauthenticated requests redirected / 401, a wrong password 401, cookies
  HttpOnly + SameSite=Strict, POSTs without or with a wrong CSRF token 403, bad form input
  400, the hostile caption escaped, the poster served; an age-restrict decision applied;
- age restriction at the edge: 403 with a reason without a token, with a token lacking the
  age-verified claim, 200 (privately cached) with one;
- two moderation processes see one queue: an item opened through one is listed and claimed
  through the other, a second report through the other merges into the same item, a claim
  held through one refuses the other.
The browser run of the console is tests/integration/test_console_browser.py (slow)."""

from __future__ import annotations

import asyncio
import re
import time
from collections.abc import Callable
from pathlib import Path

import aiohttp
import grpc
import pytest

from protos import moderation_pb2, moderation_pb2_grpc, origin_pb2, origin_pb2_grpc
from reelstream.user_tokens import mint, parse_keys
from tests.integration.conftest import ServiceProcess
from tests.integration.console_stack import (
    MODERATOR,
    PASSWORD,
    TOKEN_KEYS,
    ConsoleStack,
    start_console_stack,
)

pytestmark = [pytest.mark.integration, pytest.mark.timeout(240)]

CSRF = re.compile(r'name="csrf_token" value="([^"]+)"')
ITEM = re.compile(r'id="item-([0-9a-f]{32})" data-reel="(\d+)"')


def _jar() -> aiohttp.CookieJar:
    return aiohttp.CookieJar(unsafe=True)  # cookies of 127.0.0.1 (an IP host) too


async def _login(http: aiohttp.ClientSession, url: str, password: str) -> aiohttp.ClientResponse:
    async with http.get(f"{url}/console/login") as page:
        token = CSRF.search(await page.text())
    assert token is not None
    return await http.post(
        f"{url}/console/login",
        data={"csrf_token": token.group(1), "name": MODERATOR, "password": password},
        allow_redirects=False,
    )


async def _console_checks(stack: ConsoleStack) -> None:
    url = stack.console_url
    async with aiohttp.ClientSession(cookie_jar=_jar()) as http:
        # Not logged in: the queue redirects to the login page, POSTs and posters are 401.
        async with http.get(f"{url}/console", allow_redirects=False) as response:
            assert (response.status, response.headers["Location"]) == (303, "/console/login")
        async with http.post(f"{url}/console/decide", data={"x": "1"}) as response:
            assert response.status == 401
        async with http.get(f"{url}/console/reels/{stack.held_reel}/poster.jpg") as response:
            assert response.status == 401

        # A login without the login form's CSRF token is refused; a wrong password fails.
        async with http.post(
            f"{url}/console/login", data={"name": MODERATOR, "password": PASSWORD}
        ) as response:
            assert response.status == 403
        async with await _login(http, url, "not the password") as response:
            assert response.status == 401
            assert "wrong name or password" in await response.text()

        async with await _login(http, url, PASSWORD) as response:
            assert (response.status, response.headers["Location"]) == (303, "/console")
            cookie = next(
                v for v in response.headers.getall("Set-Cookie") if "rs_console_session" in v
            )
            assert "HttpOnly" in cookie
            assert "SameSite=Strict" in cookie

        async with http.get(f"{url}/console") as response:
            assert response.status == 200
            assert "script-src" not in response.headers["Content-Security-Policy"]
            page = await response.text()
        # The hostile caption is shown, escaped; no markup of it survives.
        assert "&lt;script&gt;alert(&quot;x&quot;)&lt;/script&gt;" in page
        assert "<script" not in page
        assert "<img src=x" not in page
        assert "text_watchlist" in page
        items = {int(reel): item for item, reel in ITEM.findall(page)}
        item_id = items[stack.held_reel]
        csrf_match = CSRF.search(page)
        assert csrf_match is not None
        csrf = csrf_match.group(1)
        async with http.get(f"{url}/console/reels/{stack.held_reel}/poster.jpg") as response:
            assert response.status == 200
            assert response.content_type == "image/jpeg"
            assert (await response.read())[:2] == b"\xff\xd8"

        decide = {"item_id": item_id, "decision": "age_restrict", "reason": "mature theme"}
        for form, status in (
            (decide, 403),  # no CSRF token
            ({**decide, "csrf_token": "wrong" + csrf}, 403),
            ({**decide, "csrf_token": csrf, "decision": "ban"}, 400),
            ({**decide, "csrf_token": csrf, "reason": "   "}, 400),
            ({**decide, "csrf_token": csrf, "item_id": "../../etc"}, 400),
            ({**decide, "csrf_token": csrf, "item_id": "0" * 32}, 404),
        ):
            async with http.post(f"{url}/console/decide", data=form) as response:
                assert response.status == status, (form, await response.text())
                assert "<html" in await response.text()  # a page with the reason
        async with http.post(
            f"{url}/console/decide", data={**decide, "csrf_token": csrf}, allow_redirects=False
        ) as response:
            assert response.status == 303, await response.text()
            assert "age_restrict" in response.headers["Location"]

        # Logging out ends the session: its cookie no longer opens the queue.
        async with http.post(f"{url}/console/logout", data={"csrf_token": csrf}) as response:
            assert response.status == 200  # the login page, after the redirect
        async with http.get(f"{url}/console", allow_redirects=False) as response:
            assert response.status == 303


async def _edge_checks(stack: ConsoleStack) -> None:
    keys = parse_keys([TOKEN_KEYS])
    expires = int(time.time()) + 600
    plain = mint(keys, "k1", 42, expires)
    verified = mint(keys, "k1", 42, expires, age_verified=True)
    master = f"{stack.edge_http}/reels/{stack.held_reel}/master.m3u8"
    async with aiohttp.ClientSession() as http:
        # The edge learns the restriction from the purge fan-out at once (no TTL wait).
        async with http.get(master) as response:
            assert response.status == 403
            assert "age-restricted" in await response.text()
        async with http.get(master, headers={"Authorization": f"Bearer {plain}"}) as response:
            assert response.status == 403
            assert "no age-verified claim" in await response.text()
        headers = {"Authorization": f"Bearer {verified}"}
        async with http.get(master, headers=headers) as response:
            assert response.status == 200
            assert response.headers["Cache-Control"].startswith("private")
            assert "Authorization" in response.headers["Vary"]
            playlist = next(
                line for line in (await response.text()).splitlines() if line.endswith(".m3u8")
            )
        rendition = f"{stack.edge_http}/reels/{stack.held_reel}/{playlist}"
        async with http.get(rendition) as response:
            assert response.status == 403
        async with http.get(rendition, headers=headers) as response:
            assert response.status == 200


def _shared_queue_checks(stack: ConsoleStack) -> None:
    with (
        grpc.insecure_channel(stack.origin) as origin_channel,
        grpc.insecure_channel(stack.moderation[0]) as channel_a,
        grpc.insecure_channel(stack.moderation[1]) as channel_b,
    ):
        origin = origin_pb2_grpc.OriginServiceStub(origin_channel)
        a = moderation_pb2_grpc.ModerationServiceStub(channel_a)
        b = moderation_pb2_grpc.ModerationServiceStub(channel_b)
        reel_id = 9_000_000 + stack.held_reel
        origin.ImportReels(
            origin_pb2.ImportReelsRequest(
                reels=[origin_pb2.Reel(reel_id=reel_id, creator_id=8, caption="imported",
                                       state=origin_pb2.REEL_STATE_PUBLISHED, duration_ms=4000)]
            ),
            timeout=10,
        )  # fmt: skip

        def report(stub: moderation_pb2_grpc.ModerationServiceStub, reporter: int) -> None:
            stub.ReportReel(
                moderation_pb2.ReportReelRequest(
                    reel_id=reel_id, reporter_id=reporter,
                    reason=moderation_pb2.REPORT_REASON_SPAM, note="bot",
                ),
                timeout=10,
            )  # fmt: skip

        def listed(stub: moderation_pb2_grpc.ModerationServiceStub) -> list[str]:
            listing = stub.ListReviewQueue(moderation_pb2.ListReviewQueueRequest(), timeout=10)
            return [q.item.item_id for q in listing.items if q.item.reel_id == reel_id]

        for reporter in (201, 202, 203):  # the third escalates, through process B
            report(b, reporter)
        opened = listed(b)
        assert len(opened) == 1
        assert listed(a) == opened  # process A sees the item B opened, without a restart
        report(a, 204)  # a later report through A merges into the same item
        assert listed(a) == listed(b) == opened

        claim = moderation_pb2.ClaimReviewRequest(moderator_id="mod-a", lease_seconds=60)
        claimed = a.ClaimReview(claim, timeout=10)  # the only open item
        assert claimed.item_id == opened[0]
        other = moderation_pb2.ClaimReviewRequest(
            moderator_id="mod-b", lease_seconds=60, item_id=opened[0]
        )
        with pytest.raises(grpc.RpcError) as refused:
            b.ClaimReview(other, timeout=10)
        assert refused.value.code() == grpc.StatusCode.FAILED_PRECONDITION
        with pytest.raises(grpc.RpcError) as empty:
            b.ClaimReview(moderation_pb2.ClaimReviewRequest(moderator_id="mod-b"), timeout=10)
        assert empty.value.code() == grpc.StatusCode.NOT_FOUND
        b.DecideReview(  # the lease taken through A is honoured by B
            moderation_pb2.DecideReviewRequest(
                item_id=opened[0], moderator_id="mod-a",
                decision=moderation_pb2.DECISION_KEEP, reason="not spam",
            ),
            timeout=20,
        )  # fmt: skip
        assert listed(a) == listed(b) == []


def test_console_age_restriction_and_a_queue_shared_by_two_moderation_processes(
    keyspace: str,
    redis_port: int,
    tmp_path: Path,
    start_service: Callable[..., ServiceProcess],
) -> None:
    stack = start_console_stack(keyspace, redis_port, tmp_path, start_service)
    asyncio.run(_console_checks(stack))
    with grpc.insecure_channel(stack.origin) as channel:
        reel = origin_pb2_grpc.OriginServiceStub(channel).GetReel(
            origin_pb2.GetReelRequest(reel_id=stack.held_reel), timeout=5
        )
    assert (reel.state, reel.age_restricted) == (origin_pb2.REEL_STATE_PUBLISHED, True)
    asyncio.run(_edge_checks(stack))
    _shared_queue_checks(stack)
