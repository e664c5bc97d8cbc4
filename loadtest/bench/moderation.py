"""`make bench-moderation`: moderation latency vs transcode time for a 15 s 1080x1920 reel,
NudeNet and vPDQ frames per second, hash-bank lookup time with 100,000 hashes.

Everything runs in this process on the real code paths (the origin's ladder transcode, the
moderation Analyzer with NudeNet, alt-profanity-check, vPDQ/PDQ and a bank lookup), one
thread per model call like the service. Writes `results/bench-moderation.json`.
"""

from __future__ import annotations

import asyncio
import json
import random
import statistics
import subprocess
import tempfile
import time
from pathlib import Path

import vpdq

from moderation.analysis import Analyzer, Upload
from moderation.hash_banks import HashBanks
from moderation.hash_index import FrameHash, HashIndex
from moderation.nudity_screen import NudityScreen
from moderation.policy import Thresholds
from moderation.store import ModerationStore
from moderation.text_screen import TextScreen
from origin.ladder import plan_ladder
from origin.ladder_transcode import stills_of, transcode_ladder
from origin.media_probe import ProbeLimits, probe_file
from origin.transcode_command import EncoderSettings

REPO_ROOT = Path(__file__).resolve().parents[2]
RESULTS_JSON = REPO_ROOT / "results" / "bench-moderation.json"
BANK_HASHES = 100_000
FRAMES_PER_CONTENT = 10


def make_reel(path: Path, seconds: int = 15) -> Path:
    subprocess.run(
        ["ffmpeg", "-nostdin", "-v", "error", "-y", "-threads", "2", "-f", "lavfi", "-i",
         f"testsrc2=size=1080x1920:rate=30:duration={seconds}", "-f", "lavfi", "-i",
         f"sine=frequency=440:duration={seconds}", "-c:v", "libx264", "-preset", "ultrafast",
         "-pix_fmt", "yuv420p", "-c:a", "aac", "-threads", "2", str(path)],
        check=True, timeout=300,
    )  # fmt: skip
    return path


def cut_clip(source: Path, clip: Path, seconds: int) -> None:
    subprocess.run(["ffmpeg", "-nostdin", "-v", "error", "-y", "-i", str(source), "-t",
                    str(seconds), "-c", "copy", str(clip)], check=True, timeout=60)  # fmt: skip


def random_bank(rng: random.Random) -> dict[str, list[FrameHash]]:
    return {
        f"content:{c}": [
            FrameHash("vpdq", f"{rng.getrandbits(256):064x}", 100, f)
            for f in range(FRAMES_PER_CONTENT)
        ]
        for c in range(BANK_HASHES // FRAMES_PER_CONTENT)
    }


async def run() -> dict[str, object]:
    with tempfile.TemporaryDirectory(prefix="bench-moderation-") as scratch:
        work = Path(scratch)
        source = make_reel(work / "reel.mp4")
        limits = ProbeLimits(180.0, 0.5, 144, 4096, 4.0, 60.0, 2)
        media = await probe_file(source, source.stat().st_size, limits)
        plan = plan_ladder(media.width, media.height, media.frame_rate)
        out = work / "ladder"
        out.mkdir()
        started = time.monotonic()
        await transcode_ladder(source, out, media, plan, EncoderSettings("veryfast", 2), 900.0)
        transcode_s = time.monotonic() - started
        stills = stills_of(out)

        nudity = NudityScreen(threads=1)
        banks = HashBanks(ModerationStore.__new__(ModerationStore))  # lookups only, no store
        rng = random.Random(7)
        banks.load_index("removed_reels", random_bank(rng))
        analyzer = Analyzer(nudity, TextScreen((), ()), banks, Thresholds(), 2, 4, 300.0, 1)
        await analyzer.warm_up()
        upload = Upload(1, "a calm walk #travel", ("#travel",), stills, source)
        started = time.monotonic()
        analysis = await analyzer.analyze(upload)
        moderation_latency_s = time.monotonic() - started
        analyzer.close()

        frames = list(stills) * 5
        started = time.monotonic()
        for frame in frames:
            nudity.frame_score(frame)
        nudenet_fps = len(frames) / (time.monotonic() - started)

        clip = work / "five.mp4"
        cut_clip(source, clip, 5)
        started = time.monotonic()
        features = vpdq.computeHash(clip, seconds_per_hash=0, thread_count=1)
        vpdq_fps = len(features) / (time.monotonic() - started)

        index = HashIndex()
        index.add_many(random_bank(rng))
        query = list(analysis.hashes)
        times = []
        for _ in range(7):
            started = time.perf_counter()
            index.lookup(query)
            times.append((time.perf_counter() - started) * 1000)
    return {
        "reel": "15 s 1080x1920 testsrc2, ladder at x264 veryfast, 2 threads",
        "transcode_s": round(transcode_s, 2),
        "moderation_latency_s": round(moderation_latency_s, 2),
        "moderation_verdict": analysis.decision.outcome.value,
        "hashes_per_reel": len(analysis.hashes),
        "nudenet_fps": round(nudenet_fps, 1),
        "nudenet_frame_size": "720x1280 stills" if stills else "",
        "vpdq_fps": round(vpdq_fps, 1),
        "vpdq_frames": "every frame of 1080x1920, 1 thread",
        "bank_hashes": len(index),
        "bank_lookup_ms": round(statistics.median(times), 2),
        "bank_lookup_query_frames": len(query),
    }


def main() -> None:
    results = asyncio.run(run())
    RESULTS_JSON.parent.mkdir(parents=True, exist_ok=True)
    RESULTS_JSON.write_text(json.dumps(results, indent=2) + "\n")
    print(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
