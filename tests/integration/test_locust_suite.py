"""The Locust suite against the real stack: a short headless run of every user class that
the merged features support, its CSV statistics checked.

Origin, one counter shard and two edges run as processes; the HLS edge is not merged yet,
so player viewers fetch a real ffmpeg-made ladder from a static HTTP server on a free port
laid out like the edge's paths (/reels/{id}/master.m3u8, <rung>_init.mp4, <rung>_NNN.m4s).
"""

from __future__ import annotations

import csv
import functools
import http.server
import os
import subprocess
import sys
import threading
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from tests.integration.conftest import REPO_ROOT, ServiceProcess, counter_env, edge_env, free_port

RUN_SECONDS = 15
MEDIA_REELS = (1, 2, 3)
ENABLED_CLASSES = ("Viewer", "PlayerViewer", "ShortWatchBot", "LockstepBot")
LADDER = (("160p", "90x160", 100), ("256p", "144x256", 200), ("320p", "180x320", 400))


def make_ladder(folder: Path) -> None:
    """A 6 s, three-rung fMP4 HLS ladder with 2 s segments, named as the edge names them."""
    folder.mkdir(parents=True)
    scales = ";".join(
        f"[s{i}]scale={size.replace('x', ':')}[v{i}]" for i, (_, size, _) in enumerate(LADDER)
    )
    splits = "".join(f"[s{i}]" for i in range(len(LADDER)))
    command = [
        "ffmpeg", "-hide_banner", "-loglevel", "error", "-y",
        "-f", "lavfi", "-i", "testsrc2=size=180x320:rate=15:duration=6",
        "-filter_complex", f"[0:v]split={len(LADDER)}{splits};{scales}",
    ]  # fmt: skip
    for i in range(len(LADDER)):
        command += ["-map", f"[v{i}]"]
    command += ["-c:v", "libx264", "-preset", "ultrafast", "-g", "30", "-keyint_min", "30"]
    for i, (_, _, kbps) in enumerate(LADDER):
        command += [f"-b:v:{i}", f"{kbps}k", f"-maxrate:v:{i}", f"{kbps}k"]
        command += [f"-bufsize:v:{i}", f"{2 * kbps}k"]
    names = " ".join(f"v:{i},name:{name}" for i, (name, _, _) in enumerate(LADDER))
    command += [
        "-sc_threshold", "0", "-f", "hls", "-hls_time", "2", "-hls_playlist_type", "vod",
        "-hls_segment_type", "fmp4", "-var_stream_map", names,
        "-master_pl_name", "master.m3u8", "-hls_segment_filename", "%v_%03d.m4s",
        "-hls_fmp4_init_filename", "%v_init.mp4", "%v.m3u8",
    ]  # fmt: skip
    subprocess.run(command, cwd=folder, check=True, timeout=60)


class QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, format: str, *args: object) -> None:
        pass


@pytest.fixture
def hls_server(tmp_path: Path) -> Iterator[str]:
    """Serves the same ladder as reels 1-3 under /reels/{id}/; yields the base URL."""
    root = tmp_path / "media"
    make_ladder(root / "ladder")
    (root / "reels").mkdir()
    for reel_id in MEDIA_REELS:
        (root / "reels" / str(reel_id)).symlink_to(root / "ladder")
    handler = functools.partial(QuietHandler, directory=str(root))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()
    thread.join(timeout=5)


def read_rows(path: Path) -> list[dict[str, str]]:
    with path.open(newline="") as file:
        return list(csv.DictReader(file))


def test_short_headless_run_of_every_enabled_user_class_succeeds(
    cassandra: str,
    redis_port: int,
    keyspace: str,
    start_service: Callable[..., ServiceProcess],
    hls_server: str,
    tmp_path: Path,
) -> None:
    origin = f"127.0.0.1:{free_port()}"
    start_service(
        "origin",
        "origin",
        {
            "REELSTREAM_ORIGIN_GRPC_ADDRESS": origin,
            "REELSTREAM_ORIGIN_METRICS_PORT": "0",
            "REELSTREAM_ORIGIN_KEYSPACE": keyspace,
        },
        origin,
    )
    counter = f"127.0.0.1:{free_port()}"
    start_service("counter", "counter-0", counter_env(keyspace, 0, 1, counter), counter)
    edges = [f"127.0.0.1:{free_port()}" for _ in range(2)]
    for index, edge in enumerate(edges):
        env = edge_env(keyspace, f"edge-{index}", edge, redis_port, [counter], origin)
        start_service("edge", f"edge-{index}", env, edge)

    prefix = tmp_path / "results" / "run"
    env = {
        **os.environ,
        "REELSTREAM_LOADTEST_EDGES": ",".join(edges),
        "REELSTREAM_LOADTEST_HTTP_EDGES": f"{hls_server},{hls_server}",
        "REELSTREAM_LOADTEST_ORIGIN": origin,
        "REELSTREAM_LOADTEST_REELS": "300",
        "REELSTREAM_LOADTEST_MEDIA_REEL_IDS": ",".join(map(str, MEDIA_REELS)),
        "REELSTREAM_LOADTEST_TIME_SCALE": "0.05",
        "REELSTREAM_LOADTEST_BOT_GROUP_SIZE": "2",
        "REELSTREAM_LOADTEST_WEIGHTS": "viewer=4,player_viewer=4,short_watch_bot=2,lockstep_bot=2",
    }
    command = [
        sys.executable, "-m", "locust", "-f", "loadtest/locustfile.py", "--headless",
        "-u", "12", "-r", "12", "-t", f"{RUN_SECONDS}s", "--stop-timeout", "3",
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
    assert ("GET", "/reels/[id]/master.m3u8") in names
    assert ("GET", "/reels/[id]/[segment]") in names
    for figure in ("startup_ms", "rebuffer_permille", "avg_bitrate_kbps", "rung_switches"):
        assert ("qoe", figure) in names

    by_class = {
        row["User class"]: int(row["Requests"])
        for row in read_rows(Path(f"{prefix}_user_classes.csv"))
    }
    for user_class in ENABLED_CLASSES:
        assert by_class.get(user_class, 0) > 0, by_class
    assert Path(f"{prefix}.html").stat().st_size > 10_000
