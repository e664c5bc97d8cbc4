"""Clips for the moderation tests, all made by ffmpeg: an original (a test pattern
letterboxed into a portrait frame), a disguised copy of it (bars cropped off, rescaled,
brightened, re-encoded at another quality) and an unrelated clip (a Mandelbrot zoom)."""

from __future__ import annotations

import subprocess
from pathlib import Path

FFMPEG = ["ffmpeg", "-nostdin", "-v", "error", "-y", "-threads", "1"]
X264 = ["-c:v", "libx264", "-preset", "ultrafast", "-pix_fmt", "yuv420p", "-threads", "1"]


def _run(argv: list[str]) -> None:
    subprocess.run(argv, check=True, timeout=120)


def make_original(path: Path, seconds: float = 4, width: int = 360, height: int = 640) -> Path:
    top = (height - width) // 2
    _run([*FFMPEG, "-f", "lavfi", "-i", f"testsrc2=size={width}x{width}:rate=30:duration={seconds}",
          "-vf", f"pad={width}:{height}:0:{top}:black,setsar=1", *X264, str(path)])  # fmt: skip
    return path


def make_disguised_copy(original: Path, path: Path, width: int = 360, height: int = 640) -> Path:
    top = (height - width) // 2
    side = width * 3 // 4 // 2 * 2
    _run([*FFMPEG, "-i", str(original), "-vf",
          f"crop={width}:{width}:0:{top},scale={side}:{side},eq=brightness=0.1,setsar=1",
          *X264, "-crf", "30", str(path)])  # fmt: skip
    return path


def make_unrelated(path: Path, seconds: float = 4, width: int = 360, height: int = 640) -> Path:
    _run([*FFMPEG, "-f", "lavfi", "-i", f"mandelbrot=size={width}x{height}:rate=30",
          "-t", str(seconds), "-vf", "setsar=1", *X264, str(path)])  # fmt: skip
    return path
