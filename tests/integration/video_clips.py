"""Test media made by ffmpeg (testsrc2 + sine), small and short so tests stay fast."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path


def make_clip(
    path: Path,
    width: int,
    height: int,
    seconds: float,
    *,
    rate: int = 30,
    audio: bool = True,
    variable_frame_rate: bool = False,
) -> Path:
    """An H.264 (+ AAC) MP4 of a moving test pattern. With `variable_frame_rate`, frames are
    dropped irregularly and timestamps kept, so frame durations vary (like phone captures)."""
    video_filter = "setsar=1"
    if variable_frame_rate:
        # Keep frames whose index is not 1 or 2 modulo 5, then pass their timestamps through.
        video_filter = "select='not(between(mod(n,5),1,2))',setsar=1"
    argv = [
        "ffmpeg",
        "-v",
        "error",
        "-y",
        "-f",
        "lavfi",
        "-i",
        f"testsrc2=size={width}x{height}:rate={rate}:duration={seconds}",
    ]
    if audio:
        argv += ["-f", "lavfi", "-i", f"sine=frequency=440:sample_rate=48000:duration={seconds}"]
    argv += ["-vf", video_filter, "-c:v", "libx264", "-preset", "ultrafast", "-threads", "1"]
    argv += ["-pix_fmt", "yuv420p"]
    if variable_frame_rate:
        argv += ["-fps_mode", "vfr"]
    if audio:
        argv += ["-c:a", "aac", "-b:a", "64k"]
    subprocess.run([*argv, "-movflags", "+faststart", str(path)], check=True, timeout=60)
    return path


def make_image(path: Path) -> Path:
    subprocess.run(
        [
            "ffmpeg",
            "-v",
            "error",
            "-y",
            "-f",
            "lavfi",
            "-i",
            "testsrc2=size=320x240",
            "-frames:v",
            "1",
            str(path),
        ],
        check=True,
        timeout=30,
    )
    return path


def make_audio(path: Path, seconds: float = 2.0) -> Path:
    subprocess.run(
        [
            "ffmpeg",
            "-v",
            "error",
            "-y",
            "-f",
            "lavfi",
            "-i",
            f"sine=duration={seconds}",
            "-c:a",
            "aac",
            str(path),
        ],
        check=True,
        timeout=30,
    )
    return path


def keyframe_times(path: Path) -> list[float]:
    """Presentation times of the video keyframes of a (concatenated fMP4) file."""
    out = subprocess.run(
        [
            "ffprobe",
            "-v",
            "error",
            "-select_streams",
            "v:0",
            "-skip_frame",
            "nokey",
            "-show_entries",
            "frame=pts_time",
            "-of",
            "json",
            str(path),
        ],
        check=True,
        capture_output=True,
        timeout=60,
    ).stdout
    return [round(float(f["pts_time"]), 3) for f in json.loads(out)["frames"]]


def stream_info(path: Path) -> dict[str, object]:
    out = subprocess.run(
        ["ffprobe", "-v", "error", "-show_streams", "-show_format", "-of", "json", str(path)],
        check=True,
        capture_output=True,
        timeout=60,
    ).stdout
    result: dict[str, object] = json.loads(out)
    return result
