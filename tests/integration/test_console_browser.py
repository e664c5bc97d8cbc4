"""The moderator console in a real browser: Debian's headless Chromium, driven by
playwright-core (harness in tests/console/), against a real stack (two moderation processes,
the origin with its console, an edge, Cassandra) holding an uploaded clip for review. The
browser is sent to the login page, fails with a wrong password, logs in, sees the item with
its poster, caption and signal reasons, removes it, and the reel becomes REMOVED.

Needs /usr/bin/chromium and Node.js (`make test-console` installs both and runs this test);
the npm package is installed into tests/console/node_modules (git-ignored) on first run.
"""

from __future__ import annotations

import json
import shutil
import subprocess
from collections.abc import Callable
from pathlib import Path
from typing import Any

import grpc
import pytest

from protos import origin_pb2, origin_pb2_grpc
from tests.integration.conftest import REPO_ROOT, ServiceProcess
from tests.integration.console_stack import (
    HOSTILE_CAPTION,
    MODERATOR,
    PASSWORD,
    start_console_stack,
)

pytestmark = [pytest.mark.slow, pytest.mark.timeout(300)]

HARNESS = REPO_ROOT / "tests" / "console"
CHROMIUM = Path("/usr/bin/chromium")


def _node() -> str:
    node = shutil.which("node")
    if node is None or not CHROMIUM.exists():
        pytest.skip("needs Node.js and /usr/bin/chromium: run `make test-console`")
    return node


def _install_harness() -> None:
    """playwright-core pinned by package-lock.json, into the git-ignored node_modules."""
    if (HARNESS / "node_modules" / "playwright-core").is_dir():
        return
    subprocess.run(
        ["npm", "ci", "--no-audit", "--no-fund", "--ignore-scripts"],
        cwd=HARNESS,
        check=True,
        timeout=180,
        capture_output=True,
    )


def _moderate(node: str, console_url: str, reel_id: int, password: str) -> dict[str, Any]:
    completed = subprocess.run(
        [node, str(HARNESS / "moderate.mjs"), console_url, str(reel_id), MODERATOR, password],
        cwd=HARNESS,
        capture_output=True,
        text=True,
        timeout=150,
    )
    assert completed.returncode == 0, completed.stderr[-3000:]
    result: dict[str, Any] = json.loads(completed.stdout.strip().splitlines()[-1])
    return result


def test_a_moderator_logs_in_and_removes_a_held_reel_in_chromium(
    keyspace: str,
    redis_port: int,
    tmp_path: Path,
    start_service: Callable[..., ServiceProcess],
) -> None:
    node = _node()
    _install_harness()
    stack = start_console_stack(keyspace, redis_port, tmp_path, start_service)

    seen = _moderate(node, stack.console_url, stack.held_reel, PASSWORD)
    print(json.dumps(seen))

    assert seen["redirectedTo"] == "/console/login"
    assert "wrong name or password" in seen["wrongPasswordError"]
    assert seen["loggedInAt"] == "/console"
    session = next(c for c in seen["cookies"] if c["name"] == "rs_console_session")
    assert (session["httpOnly"], session["sameSite"]) == (True, "Strict")
    assert seen["posterWidth"] > 0  # the poster decoded in the browser
    assert HOSTILE_CAPTION in seen["caption"]  # shown as text, never run
    assert seen["dialogs"] == []
    assert any("watchlist" in reason for reason in seen["reasons"]), seen["reasons"]
    assert "remove applied" in seen["notice"]
    assert seen["stillListed"] == 0

    with grpc.insecure_channel(stack.origin) as channel:
        reel = origin_pb2_grpc.OriginServiceStub(channel).GetReel(
            origin_pb2.GetReelRequest(reel_id=stack.held_reel), timeout=5
        )
    assert reel.state == origin_pb2.REEL_STATE_REMOVED
