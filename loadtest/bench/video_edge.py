"""`python -m loadtest.bench.video_edge` (`make bench-video-edge`): the edge half of the
video benchmark, in one run.

1. Hot-segment serving: cache hits of a 200 KB and a 1 MB segment from the edge (real edge
   processes, `BENCH_EDGE_WORKERS` (default 1) sharing the port with SO_REUSEPORT) against nginx
   (Debian) serving the same files from disk with as many workers, same wrk, loopback.
   Runs alternate edge/nginx for `BENCH_VIDEO_ROUNDS` rounds of `BENCH_VIDEO_SECONDS`
   each and the median is reported: the machine is shared, so noise hits both sides alike.
2. Hit ratio on a Zipf trace (10,000 reels, cache 5% of the footprint): the edge's S3-FIFO
   against LRU and Belady, and a plot over cache sizes.
3. Coalescing: origin fetches caused by 1,000 concurrent requests for one uncached segment
   (one edge process; with SO_REUSEPORT workers each worker coalesces on its own, also
   reported).

Writes `results/bench-video-edge.json`, `docs/bench-video-edge.png` and the video-edge
section of `docs/benchmarks.md`; prints a table.
"""

from __future__ import annotations

import asyncio
import os
import sys
import tempfile
import time
from pathlib import Path

import aiohttp
import uvloop

from loadtest.bench.cache_trace import TraceSettings, hit_ratios, make_trace
from loadtest.bench.edge_fleet import EdgeFleet, free_port
from loadtest.bench.folder_origin import FolderOrigin, serve_folder
from loadtest.bench.http_load import NginxServer, WrkResult, run_wrk, wait_http
from loadtest.bench.settings import REPO_ROOT
from loadtest.bench.video_edge_report import VideoEdgeResults, console_table, write_outputs
from reelstream.infra import redis_server

RESULTS_JSON = REPO_ROOT / "results" / "bench-video-edge.json"
SEGMENTS = {"200k": ("360p_000.m4s", 200 * 1024), "1m": ("1080p_000.m4s", 1024 * 1024)}
COALESCING_REQUESTS = 1000
CACHE_SHARES = (0.01, 0.02, 0.05, 0.10, 0.20, 0.40)
REDIS_INSTANCE = "bench-video-edge"
REDIS_PORT = 6397


def _env_number(name: str, default: float) -> float:
    raw = os.environ.get(name)
    return default if raw is None or raw == "" else float(raw)


def _make_media(folder: Path) -> Path:
    """Random (incompressible) segment files, and nginx's root with the edge's paths."""
    media = folder / "media"
    media.mkdir()
    root = folder / "root" / "reels" / "1"
    root.mkdir(parents=True)
    for name, size in SEGMENTS.values():
        data = os.urandom(size)
        (media / name).write_bytes(data)
        (root / name).write_bytes(data)
    for index in range(COALESCING_REQUESTS // 100):
        (media / f"720p_{index:03d}.m4s").write_bytes(os.urandom(300 * 1024))
    return media


def measure_serving(
    fleet: EdgeFleet, nginx_base: str, seconds: float, rounds: int, connections: int
) -> dict[str, dict[str, list[WrkResult]]]:
    runs: dict[str, dict[str, list[WrkResult]]] = {
        key: {"edge": [], "nginx": []} for key in SEGMENTS
    }
    for name, _ in SEGMENTS.values():
        # Warm every worker's cache (connections spread over workers) and both servers.
        run_wrk(f"{fleet.base_url}/reels/1/{name}", 1, connections)
        run_wrk(f"{nginx_base}/reels/1/{name}", 1, connections)
    for round_number in range(1, rounds + 1):
        for key, (name, _) in SEGMENTS.items():
            for server, base in (("edge", fleet.base_url), ("nginx", nginx_base)):
                result = run_wrk(f"{base}/reels/1/{name}", seconds, connections)
                runs[key][server].append(result)
                print(
                    f"  round {round_number} {key:>4} {server:<5} "
                    f"{result.requests_per_s:>9,.0f} req/s {result.megabytes_per_s:>7,.0f} MB/s "
                    f"p99 {result.latency_p99_ms:.1f} ms errors {result.errors}",
                    flush=True,
                )
    return runs


async def _burst(url: str, requests: int) -> list[int]:
    connector = aiohttp.TCPConnector(limit=0)
    timeout = aiohttp.ClientTimeout(total=120)
    async with aiohttp.ClientSession(connector=connector, timeout=timeout) as session:

        async def one() -> int:
            async with session.get(url) as response:
                await response.read()
                return response.status

        return await asyncio.gather(*(one() for _ in range(requests)))


def measure_coalescing(
    fleet: EdgeFleet, origin: FolderOrigin, reel_id: int, name: str
) -> tuple[int, int]:
    """Origin fetches and 200s for 1,000 concurrent requests of an uncached segment."""
    origin.segment_delay_s = 1.0  # the fetch is still in flight while the burst arrives
    try:
        statuses = uvloop.run(
            _burst(f"{fleet.base_url}/reels/{reel_id}/{name}", COALESCING_REQUESTS)
        )
    finally:
        origin.segment_delay_s = 0.0
    return origin.calls(reel_id, name), sum(1 for status in statuses if status == 200)


def main() -> int:
    seconds = _env_number("BENCH_VIDEO_SECONDS", 5)
    rounds = int(_env_number("BENCH_VIDEO_ROUNDS", 3))
    # One worker by default: on 2 cores with wrk on the same machine, a second Python worker
    # only adds contention (measured: 1,852 vs 4,765 req/s for 200 KB at load average ~20).
    workers = int(_env_number("BENCH_EDGE_WORKERS", 1))
    connections = int(_env_number("BENCH_VIDEO_CONNECTIONS", 64))
    started = time.monotonic()
    print(f"bench-video-edge on {os.cpu_count()} cores, load average {os.getloadavg()[0]:.1f}")

    print("\n[1/3] hit ratio on a Zipf trace (simulation)", flush=True)
    trace_settings = TraceSettings()
    trace = make_trace(trace_settings)
    curves = {share: hit_ratios(trace, share) for share in CACHE_SHARES}
    for share, ratios in curves.items():
        print(f"  cache {share:>4.0%}: " + ", ".join(f"{k} {v:.3f}" for k, v in ratios.items()))

    with tempfile.TemporaryDirectory(prefix="bench-video-edge-") as tmp:
        folder = Path(tmp)
        folder.chmod(0o755)  # nginx workers run as an unprivileged user and must read it
        media = _make_media(folder)
        origin = FolderOrigin(media)
        server, origin_address = serve_folder(origin)
        redis_server.up_journal(REDIS_INSTANCE, REDIS_PORT)
        redis_url = f"redis://127.0.0.1:{REDIS_PORT}/0"
        try:
            print(f"\n[2/3] hot segments: {workers} edge workers vs nginx, {rounds} rounds")
            nginx_port = free_port()
            with (
                EdgeFleet(
                    "bench-edge", workers, origin_address, redis_url, folder / "log"
                ) as fleet,
                NginxServer(folder / "root", folder / "nginx", nginx_port, workers),
            ):
                nginx_base = f"http://127.0.0.1:{nginx_port}"
                wait_http(f"{nginx_base}/reels/1/{SEGMENTS['200k'][0]}", 10)
                serving = measure_serving(fleet, nginx_base, seconds, rounds, connections)
                serving_fetches = sum(origin.calls(1, name) for name, _ in SEGMENTS.values())
                multi_fetches, multi_ok = measure_coalescing(fleet, origin, 8, "720p_001.m4s")
            print("\n[3/3] coalescing: 1,000 concurrent requests, one uncached segment")
            with EdgeFleet("bench-coalesce", 1, origin_address, redis_url, folder / "log") as one:
                fetches, ok = measure_coalescing(one, origin, 7, "720p_000.m4s")
                coalesced = one.metric_total("edge_cache_coalesced_waits_total")
        finally:
            server.stop(grace=None)
            redis_server.wipe(REDIS_INSTANCE)
    results = VideoEdgeResults(
        workers=workers,
        connections=connections,
        seconds=seconds,
        rounds=rounds,
        serving=serving,
        serving_origin_fetches=serving_fetches,
        trace=trace_settings,
        trace_requests=len(trace.keys),
        footprint_bytes=trace.footprint_bytes,
        curves=curves,
        coalescing_origin_fetches=fetches,
        coalescing_ok=ok,
        coalescing_waits=int(coalesced),
        coalescing_origin_fetches_workers=multi_fetches,
        coalescing_ok_workers=multi_ok,
        load_average=os.getloadavg()[0],
        total_s=time.monotonic() - started,
    )
    write_outputs(results, RESULTS_JSON)
    print("\n" + console_table(results))
    return 0


if __name__ == "__main__":
    sys.exit(main())
