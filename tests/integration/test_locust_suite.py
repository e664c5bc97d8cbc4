"""The Locust suite against the real stack: a short headless run of every user class the
merged features support, its CSV statistics checked.

Origin, one counter shard and two edges (each with its HLS HTTP server) run as processes.
Before Locust starts, two ffmpeg clips are uploaded through the origin's Upload and
transcoded into real ladders; player viewers play them from the edges, creators upload
more during the run.
"""

from __future__ import annotations

import csv
import os
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import grpc
import pytest

from loadtest.clip_upload import ClipSpec, make_clip, upload_clip, wait_published
from protos import origin_pb2_grpc
from tests.integration.conftest import (
    REPO_ROOT,
    ServiceProcess,
    counter_env,
    edge_env,
    free_port,
    origin_env,
)

pytestmark = pytest.mark.timeout(150)

RUN_SECONDS = 15
MEDIA_CLIPS = (ClipSpec(480, 854, 6.0, variant=0), ClipSpec(360, 640, 4.0, variant=1))
ENABLED_CLASSES = (
    "Viewer",
    "PlayerViewer",
    "Creator",
    "Reporter",
    "Moderator",
    # One per attack family of the spam simulator.
    "ShortWatchBot",
    "LockstepBot",
    "LikeFarmBot",
    "CamouflagedBot",
    "GeoHoppingBot",
    "TakeoverBot",
    "SlowDripBot",
)
# The edges require signed user tokens; the suite signs each call as its user (bots as the
# account they act for), so any refused token would show as a failed SendEvents.
TOKEN_KEYS = "lt1:locust-suite-secret-0123456789"


def upload_media(origin: str, folder: Path) -> list[int]:
    """Uploads MEDIA_CLIPS through the origin; returns the reel ids once all are PUBLISHED."""
    reel_ids = []
    with grpc.insecure_channel(origin) as channel:
        stub = origin_pb2_grpc.OriginServiceStub(channel)
        for index, spec in enumerate(MEDIA_CLIPS):
            clip = make_clip(spec, folder / f"clip-{index}.mp4")
            reel_ids.append(upload_clip(stub, clip, creator_id=1, caption=f"media {index}"))
        for reel_id in reel_ids:
            wait_published(stub, reel_id, timeout_s=60)
    return reel_ids


def read_rows(path: Path) -> list[dict[str, str]]:
    with path.open(newline="") as file:
        return list(csv.DictReader(file))


def test_short_headless_run_of_every_enabled_user_class_succeeds(
    cassandra: str,
    redis_port: int,
    keyspace: str,
    start_service: Callable[..., ServiceProcess],
    tmp_path: Path,
) -> None:
    started = time.monotonic()
    origin = f"127.0.0.1:{free_port()}"
    start_service(
        "origin",
        "origin",
        origin_env(keyspace, origin, tmp_path / "media"),
        origin,
    )
    counter = f"127.0.0.1:{free_port()}"
    start_service("counter", "counter-0", counter_env(keyspace, 0, 1, counter), counter)
    edges = [f"127.0.0.1:{free_port()}" for _ in range(2)]
    http_edges = []
    for index, edge in enumerate(edges):
        env = edge_env(keyspace, f"edge-{index}", edge, redis_port, [counter], origin)
        env["REELSTREAM_EDGE_REQUIRE_USER_TOKENS"] = "true"
        env["REELSTREAM_EDGE_USER_TOKEN_KEYS"] = TOKEN_KEYS
        http_edges.append(f"http://{env['REELSTREAM_EDGE_HTTP_ADDRESS']}")
        start_service("edge", f"edge-{index}", env, edge)
    moderation = f"127.0.0.1:{free_port()}"
    start_service(
        "moderation",
        "moderation",
        {
            "REELSTREAM_MODERATION_GRPC_ADDRESS": moderation,
            "REELSTREAM_MODERATION_METRICS_PORT": "0",
            "REELSTREAM_MODERATION_KEYSPACE": keyspace,
            "REELSTREAM_MODERATION_EDGE_ADDRESSES": ",".join(edges),
            "REELSTREAM_MODERATION_COUNTER_ADDRESSES": counter,
            # Every report escalates, so the moderators have a queue to work.
            "REELSTREAM_MODERATION_REPORT_ESCALATE_WEIGHT": "0.5",
            "REELSTREAM_MODERATION_REPORT_HIDE_WEIGHT": "1000",
        },
        moderation,
    )
    media_reels = upload_media(origin, tmp_path)
    print(f"stack up and {len(media_reels)} reels published in {time.monotonic() - started:.1f} s")

    prefix = tmp_path / "results" / "run"
    env = {
        **os.environ,
        "REELSTREAM_LOADTEST_EDGES": ",".join(edges),
        "REELSTREAM_LOADTEST_HTTP_EDGES": ",".join(http_edges),
        "REELSTREAM_LOADTEST_ORIGIN": origin,
        "REELSTREAM_LOADTEST_MODERATION": moderation,
        "REELSTREAM_LOADTEST_REELS": "300",
        "REELSTREAM_LOADTEST_MEDIA_REEL_IDS": ",".join(map(str, media_reels)),
        "REELSTREAM_LOADTEST_TIME_SCALE": "0.05",
        "REELSTREAM_LOADTEST_USER_TOKEN_KEYS": TOKEN_KEYS,
        # Bot campaigns: 4 accounts each, a simulated hour replayed in 14 s.
        "REELSTREAM_LOADTEST_SPAM_ACCOUNTS": "4",
        "REELSTREAM_LOADTEST_SPAM_TIME_SCALE": "0.004",
        "REELSTREAM_LOADTEST_WEIGHTS": (
            "viewer=4,player_viewer=4,creator=1,reporter=2,moderator=1,short_watch_bot=1,"
            "lockstep_bot=1,like_farm_bot=1,camouflaged_bot=1,geo_hopping_bot=1,"
            "takeover_bot=1,slow_drip_bot=1"
        ),
    }
    command = [
        sys.executable, "-m", "locust", "-f", "loadtest/locustfile.py", "--headless",
        "-u", "20", "-r", "20", "-t", f"{RUN_SECONDS}s", "--stop-timeout", "3",
        "--csv", str(prefix), "--html", str(prefix) + ".html", "--only-summary",
        "--loglevel", "WARNING", "--exit-code-on-error", "0",
    ]  # fmt: skip
    result = subprocess.run(
        command,
        cwd=REPO_ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=RUN_SECONDS + 40,
    )
    assert result.returncode == 0, result.stderr[-3000:]

    stats = read_rows(Path(f"{prefix}_stats.csv"))
    # Network requests only: "qoe" and "rejected" rows are figures, not calls.
    calls = [row for row in stats if row["Type"] in ("grpc", "GET")]
    requests = sum(int(row["Request Count"]) for row in calls)
    failures = sum(int(row["Failure Count"]) for row in calls)
    assert next(row for row in stats if row["Name"] == "Aggregated")
    print(f"{requests} requests, {failures} failures in {RUN_SECONDS} s")
    for row in stats:
        print(
            f"{row['Type']:>8} {row['Name']:<34} n={row['Request Count']:>5}"
            f" avg={float(row['Average Response Time']):9.1f} p50={row['50%']:>6}"
        )
    assert requests > 100
    assert failures / requests < 0.01, Path(f"{prefix}_failures.csv").read_text()

    names = {(row["Type"], row["Name"]) for row in stats}
    assert ("grpc", "EdgeService/SendEvents") in names
    assert ("grpc", "EdgeService/GetCounts") in names
    assert ("grpc", "OriginService/ImportReels") in names
    assert ("grpc", "OriginService/Upload") in names
    assert ("grpc", "ModerationService/ReportReel") in names
    assert any(name.startswith("ModerationService/ClaimReview") for _, name in names)
    assert ("GET", "/reels/[id]/master.m3u8") in names
    assert ("GET", "/reels/[id]/[segment]") in names
    for figure in ("startup_ms", "rebuffer_permille", "avg_bitrate_kbps", "rung_switches"):
        assert ("qoe", figure) in names
    # The creator's clip was transcoded and published while the load ran.
    publish = next(row for row in stats if row["Name"] == "time_to_publish_ms")
    assert int(publish["Request Count"]) > 0
    assert int(publish["Failure Count"]) == 0, Path(f"{prefix}_failures.csv").read_text()

    by_class = {
        row["User class"]: int(row["Requests"])
        for row in read_rows(Path(f"{prefix}_user_classes.csv"))
    }
    for user_class in ENABLED_CLASSES:
        assert by_class.get(user_class, 0) > 0, by_class
    assert Path(f"{prefix}.html").stat().st_size > 10_000
