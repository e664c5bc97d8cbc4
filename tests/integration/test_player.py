"""A real player: hls.js in Debian's headless Chromium (driven by playwright-core, harness in
tests/player/) plays a reel uploaded to the real origin and served by a real edge, to the
end with no fatal error, and switches to a lower rung when Chromium's network emulation
throttles the download rate mid-play.

Needs /usr/bin/chromium and Node.js (`make test-player` installs both and runs this test);
the npm packages are installed into tests/player/node_modules (git-ignored) on first run.
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

from loadtest.clip_upload import ClipSpec, make_clip, upload_clip, wait_published
from protos import origin_pb2_grpc
from tests.integration.conftest import REPO_ROOT, ServiceProcess, free_port, origin_env

pytestmark = [pytest.mark.slow, pytest.mark.timeout(240)]

HARNESS = REPO_ROOT / "tests" / "player"
CHROMIUM = Path("/usr/bin/chromium")
# 480x854: the origin makes 480p, 360p and 240p; 16 s is 8 segments of 2 s, enough to climb
# to the top rung on loopback and to come down after the throttle.
CLIP = ClipSpec(480, 854, 16.0, variant=7)
THROTTLE_AFTER_S = 5.0
THROTTLE_KBPS = 250


def _node() -> str:
    node = shutil.which("node")
    if node is None or not CHROMIUM.exists():
        pytest.skip("needs Node.js and /usr/bin/chromium: run `make test-player`")
    return node


def _install_harness() -> None:
    """npm packages pinned by package-lock.json, into the git-ignored node_modules."""
    if (HARNESS / "node_modules" / "hls.js").is_dir() and (
        HARNESS / "node_modules" / "playwright-core"
    ).is_dir():
        return
    subprocess.run(
        ["npm", "ci", "--no-audit", "--no-fund", "--ignore-scripts"],
        cwd=HARNESS,
        check=True,
        timeout=180,
        capture_output=True,
    )


def _play(node: str, master_url: str, *extra: str) -> dict[str, Any]:
    completed = subprocess.run(
        [node, str(HARNESS / "play_reel.mjs"), master_url, "--timeout-s", "100", *extra],
        cwd=HARNESS,
        capture_output=True,
        text=True,
        timeout=150,
    )
    assert completed.returncode == 0, completed.stderr[-3000:]
    result: dict[str, Any] = json.loads(completed.stdout.strip().splitlines()[-1])
    return result


def test_hls_js_in_chromium_plays_a_reel_from_the_edge_and_switches_down_when_throttled(
    keyspace: str,
    redis_port: int,
    tmp_path: Path,
    start_service: Callable[..., ServiceProcess],
) -> None:
    node = _node()
    _install_harness()
    origin = f"127.0.0.1:{free_port()}"
    start_service(
        "origin",
        "origin",
        origin_env(keyspace, origin, tmp_path / "media"),
        origin,
    )
    http_port = free_port()
    edge = f"127.0.0.1:{free_port()}"
    start_service(
        "edge",
        "edge-player",
        {
            "REELSTREAM_EDGE_NAME": f"edge-player-{keyspace}",
            "REELSTREAM_EDGE_GRPC_ADDRESS": edge,
            "REELSTREAM_EDGE_METRICS_PORT": "0",
            "REELSTREAM_EDGE_REDIS_URL": f"redis://127.0.0.1:{redis_port}/0",
            "REELSTREAM_EDGE_COUNTER_ADDRESSES": "127.0.0.1:1",
            "REELSTREAM_EDGE_VALIDATE_REELS": "false",
            "REELSTREAM_EDGE_ORIGIN_ADDRESS": origin,
            "REELSTREAM_EDGE_HTTP_ADDRESS": f"127.0.0.1:{http_port}",
        },
        edge,
    )
    clip = make_clip(CLIP, tmp_path / "clip.mp4")
    with grpc.insecure_channel(origin) as channel:
        stub = origin_pb2_grpc.OriginServiceStub(channel)
        reel_id = upload_clip(stub, clip, creator_id=7, caption="played by hls.js")
        reel = wait_published(stub, reel_id, timeout_s=120)
    assert len(reel.renditions) >= 3, reel
    master_url = f"http://127.0.0.1:{http_port}/reels/{reel_id}/master.m3u8"

    played = _play(
        node,
        master_url,
        "--throttle-after-s",
        str(THROTTLE_AFTER_S),
        "--throttle-kbps",
        str(THROTTLE_KBPS),
    )
    summary = {k: played[k] for k in ("levels", "switches", "quality", "throttledAtMs", "fatal")}
    print(json.dumps(summary))
    print("fragments", [(f["t"], f["level"], f["sn"]) for f in played["fragments"]])

    # Played to the end, no fatal error, every frame decoded.
    assert played["fatal"] is None, played["events"]
    assert played["ended"], played
    assert played["quality"]["totalVideoFrames"] > 0
    assert played["quality"]["currentTime"] >= CLIP.seconds - 1
    assert len(played["levels"]) == len(reel.renditions)

    # Unthrottled loopback: hls.js climbs above the level it started on; once throttled, it
    # switches to a lower level than the one it was playing.
    throttled_at = played["throttledAtMs"]
    assert throttled_at is not None, "playback ended before the throttle"
    before = [s["level"] for s in played["switches"] if s["t"] < throttled_at]
    after = [s["level"] for s in played["switches"] if s["t"] >= throttled_at]
    assert before, played["switches"]
    assert after, f"no switch after the throttle at {throttled_at} ms: {played['switches']}"
    assert min(after) < before[-1], played["switches"]
