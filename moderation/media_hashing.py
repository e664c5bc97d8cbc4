"""Perceptual hashing of a reel (HMA's stateless "hasher" role): vPDQ for the video, PDQ for
its poster.

Before hashing, uniform dark borders (letterbox / pillarbox bars) are found on the stills and
cut off, and the video is reduced to one small frame per second by one ffmpeg process; both
the banked original and a re-upload go through the same normalisation, so a copy whose bars
were added or cropped away still yields the same hashes. The normalised file is tiny, which
also makes vPDQ fast (it decodes every frame it is given).

Blocking functions (`border_box`, `vpdq_hashes`, `pdq_hash`) run in the analysis pool.
"""

from __future__ import annotations

import tempfile
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np
import numpy.typing as npt
import pdqhash
import vpdq

from moderation.hash_index import FrameHash
from origin.errors import ToolFailed
from origin.media_tool import run_tool

BORDER_LUMA = 24
"""Rows/columns whose brightest pixel is darker than this (of 255) count as border."""
MAX_BORDER_FRACTION = 0.4
NORMALISED_SHORT_SIDE_PX = 360
FRAMES_PER_SECOND = 1.0


@dataclass(frozen=True)
class BorderBox:
    """The picture without its bars, as fractions of the frame."""

    left: float = 0.0
    top: float = 0.0
    width: float = 1.0
    height: float = 1.0

    @property
    def is_full(self) -> bool:
        return self.width >= 0.995 and self.height >= 0.995


def _content_span(max_luma: npt.NDArray[np.uint8]) -> tuple[int, int]:
    bright = np.flatnonzero(max_luma >= BORDER_LUMA)
    if bright.size == 0:
        return 0, int(max_luma.size)
    return int(bright[0]), int(bright[-1]) + 1


def border_box(stills: Sequence[Path]) -> BorderBox:
    """The largest box outside of which every still is dark (bars present in all stills)."""
    boxes: list[tuple[float, float, float, float]] = []
    for path in stills:
        image = cv2.imread(str(path), cv2.IMREAD_GRAYSCALE)
        if image is None:
            continue
        height, width = image.shape
        top, bottom = _content_span(image.max(axis=1))
        left, right = _content_span(image.max(axis=0))
        boxes.append((left / width, top / height, right / width, bottom / height))
    if not boxes:
        return BorderBox()
    x0 = min(b[0] for b in boxes)
    y0 = min(b[1] for b in boxes)
    x1 = max(b[2] for b in boxes)
    y1 = max(b[3] for b in boxes)
    if x0 > MAX_BORDER_FRACTION or y0 > MAX_BORDER_FRACTION:
        return BorderBox()  # mostly dark frames: nothing sensible to cut
    return BorderBox(x0, y0, x1 - x0, y1 - y0)


def normalise_filter(box: BorderBox) -> str:
    crop = ""
    if not box.is_full:
        crop = (
            f"crop=trunc(iw*{box.width:.4f}/2)*2:trunc(ih*{box.height:.4f}/2)*2"
            f":trunc(iw*{box.left:.4f}):trunc(ih*{box.top:.4f}),"
        )
    side = NORMALISED_SHORT_SIDE_PX
    return (
        f"{crop}fps={FRAMES_PER_SECOND},"
        f"scale=w='if(gt(iw,ih),-2,{side})':h='if(gt(iw,ih),{side},-2)',format=yuv420p"
    )


async def normalise_video(
    source: Path, box: BorderBox, out_dir: Path, timeout_s: float, threads: int = 1
) -> Path:
    """One small intra-coded frame per second of `source`, bars cut off.

    Raises:
        ToolFailed: ffmpeg failed or ran out of time.
    """
    out = out_dir / "normalised.mkv"
    argv = [
        "ffmpeg", "-nostdin", "-v", "error", "-y", "-threads", str(threads),
        "-i", str(source), "-an", "-sn", "-vf", normalise_filter(box),
        "-c:v", "mjpeg", "-q:v", "3", "-threads", str(threads), str(out),
    ]  # fmt: skip
    result = await run_tool(argv, timeout_s=timeout_s)
    if result.returncode != 0:
        raise ToolFailed(f"ffmpeg exited with status {result.returncode}", result.stderr_tail)
    return out


def vpdq_hashes(normalised: Path) -> list[FrameHash]:
    """vPDQ features of every frame of a normalised file (one frame per second)."""
    features = vpdq.computeHash(normalised, seconds_per_hash=0, thread_count=1)
    return [
        FrameHash("vpdq", feature.hex, int(feature.quality), int(feature.frame_number))
        for feature in features
    ]


def pdq_hash(image_path: Path, box: BorderBox) -> FrameHash | None:
    """PDQ hash of an image, bars cut off; None when unreadable."""
    image = cv2.imread(str(image_path), cv2.IMREAD_COLOR)
    if image is None:
        return None
    height, width = image.shape[:2]
    top, left = int(height * box.top), int(width * box.left)
    image = image[top : top + int(height * box.height), left : left + int(width * box.width)]
    bits, quality = pdqhash.compute(cv2.cvtColor(image, cv2.COLOR_BGR2RGB))
    value = 0
    for bit in bits.tolist():
        value = (value << 1) | int(bit)
    return FrameHash("pdq", f"{value:064x}", int(quality), 0)


def scratch_dir() -> tempfile.TemporaryDirectory[str]:
    return tempfile.TemporaryDirectory(prefix="reelstream-moderation-")
