"""The ABR ladder planner: which rungs a source gets, at what size and bit rates (pure).

Rung names count the picture's SHORT side ("720p" is 1280x720 landscape and 720x1280
portrait), so vertical video keeps its orientation and gets the same quality label as the
landscape clip of the same pixel count. A rung is offered only at or below the source's
short side (never upscaled). A source whose short side is below the lowest rung gets one
rung at its own size, named after that short side (e.g. "180p").

The long side keeps the source's displayed aspect ratio; both sides are even (H.264 4:2:0).
"""

from __future__ import annotations

from dataclasses import dataclass
from fractions import Fraction

LADDER_VERSION = "v1"
"""Part of the media folder key: changing rungs or encoder settings must change it, so a
new ladder never mixes with files made by the old one."""

MAX_FRAME_RATE = Fraction(60)
"""Frame rates above this are halved in effect (the fps filter drops frames)."""
DEFAULT_FRAME_RATE = Fraction(30)
"""Used when the source declares no usable frame rate."""
KEYFRAME_INTERVAL_S = 2
"""Keyframes are forced every 2 s on every rung (segment boundaries line up)."""


@dataclass(frozen=True)
class RungSpec:
    """One rung of the full ladder: nominal short side and capped-VBR rates (kbit/s)."""

    short_side: int
    video_kbps: int
    maxrate_kbps: int
    audio_kbps: int

    @property
    def name(self) -> str:
        return f"{self.short_side}p"

    @property
    def bufsize_kbps(self) -> int:
        # Two seconds of maxrate: one segment's worth of buffer, so the cap holds per segment.
        return 2 * self.maxrate_kbps


# Typical rates for vertical short video (notes/video.md): avg / max kbit/s, AAC 128k (64k on
# the lowest rung).
FULL_LADDER: tuple[RungSpec, ...] = (
    RungSpec(1080, 4500, 4800, 128),
    RungSpec(720, 2500, 2700, 128),
    RungSpec(480, 1100, 1200, 128),
    RungSpec(360, 600, 650, 96),
    RungSpec(240, 300, 330, 64),
)


@dataclass(frozen=True)
class PlannedRung:
    """A rung as it will be encoded for one source."""

    name: str
    width: int
    height: int
    video_kbps: int
    maxrate_kbps: int
    bufsize_kbps: int
    audio_kbps: int


@dataclass(frozen=True)
class LadderPlan:
    """Every rung of one source (highest first) and the common output frame rate."""

    rungs: tuple[PlannedRung, ...]
    frame_rate: Fraction

    @property
    def gop_frames(self) -> int:
        return max(1, round(self.frame_rate * KEYFRAME_INTERVAL_S))


def _even(value: float | Fraction) -> int:
    return max(2, round(value / 2) * 2)


def _scaled(spec: RungSpec, short_side: int, factor: Fraction) -> RungSpec:
    """`spec`'s rates scaled by `factor` (a rung below the lowest nominal one)."""
    return RungSpec(
        short_side,
        max(100, int(spec.video_kbps * factor)),
        max(110, int(spec.maxrate_kbps * factor)),
        spec.audio_kbps,
    )


def output_frame_rate(source_rate: Fraction | None) -> Fraction:
    """The constant frame rate every rung gets: the source's, capped at 60, 30 if unknown."""
    if source_rate is None or source_rate <= 0 or source_rate > 1000:
        return DEFAULT_FRAME_RATE
    return min(source_rate, MAX_FRAME_RATE)


def plan_ladder(width: int, height: int, source_rate: Fraction | None) -> LadderPlan:
    """Plans the rungs of a source of `width` x `height` displayed pixels.

    Raises:
        ValueError: a side is not positive.
    """
    if width <= 0 or height <= 0:
        raise ValueError(f"bad source size {width}x{height}")
    short_src, long_src = min(width, height), max(width, height)
    portrait = height > width
    specs = [spec for spec in FULL_LADDER if spec.short_side <= short_src]
    if not specs:
        lowest = FULL_LADDER[-1]
        short = max(2, short_src - short_src % 2)  # even, never above the source
        specs = [_scaled(lowest, short, Fraction(short * short, lowest.short_side**2))]
    rungs = []
    for spec in specs:
        short = spec.short_side
        long = _even(Fraction(short * long_src, short_src))
        w, h = (short, long) if portrait else (long, short)
        rungs.append(
            PlannedRung(
                name=spec.name,
                width=w,
                height=h,
                video_kbps=spec.video_kbps,
                maxrate_kbps=spec.maxrate_kbps,
                bufsize_kbps=spec.bufsize_kbps,
                audio_kbps=spec.audio_kbps,
            )
        )
    return LadderPlan(rungs=tuple(rungs), frame_rate=output_frame_rate(source_rate))
