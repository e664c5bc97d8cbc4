"""The master playlist with measured bit rates (pure: playlists and file sizes in, text out).

ffmpeg's own master gives each variant a nominal BANDWIDTH ((maxrate + audio) x 1.1) and no
AVERAGE-BANDWIDTH or FRAME-RATE. RFC 8216 section 4.3.4.2 defines BANDWIDTH as the peak
segment bit rate and AVERAGE-BANDWIDTH as the average, so both are computed here from the
media segments of each rung (size x 8 / EXTINF duration):
- the init segment is left out (fetched once, not per segment of playback);
- a final segment shorter than `MIN_PEAK_SEGMENT_S` is left out of the peak (but not of the
  average) unless it is the only one: a 0.1 s tail holding one keyframe would otherwise
  claim a peak many times the real one and push players to lower rungs for nothing.
CODECS comes from ffmpeg's master (it reads the encoder's profile and level).
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from fractions import Fraction

MIN_PEAK_SEGMENT_S = 1.0

_EXTINF = re.compile(r"#EXTINF:([0-9.]+)")
_CODECS = re.compile(r'CODECS="([^"]+)"')


@dataclass(frozen=True)
class MediaSegment:
    uri: str
    duration_s: float


@dataclass(frozen=True)
class MediaPlaylist:
    init_uri: str | None
    segments: tuple[MediaSegment, ...]
    ended: bool


@dataclass(frozen=True)
class RungBitrate:
    peak_bps: int
    average_bps: int


@dataclass(frozen=True)
class VariantEntry:
    """One line pair of the master playlist."""

    playlist_uri: str
    width: int
    height: int
    frame_rate: Fraction
    codecs: str
    bitrate: RungBitrate


def parse_media_playlist(text: str) -> MediaPlaylist:
    """Reads the init URI, the segments with their durations and whether it has ENDLIST.

    Raises:
        ValueError: an EXTINF without a URI after it, or no EXTM3U header.
    """
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    if not lines or lines[0] != "#EXTM3U":
        raise ValueError("not an m3u8 playlist")
    init_uri = None
    segments: list[MediaSegment] = []
    pending: float | None = None
    for line in lines[1:]:
        if line.startswith("#EXT-X-MAP:"):
            match = re.search(r'URI="([^"]+)"', line)
            init_uri = match.group(1) if match else None
        elif match := _EXTINF.match(line):
            pending = float(match.group(1))
        elif not line.startswith("#"):
            if pending is None:
                raise ValueError(f"segment {line!r} without EXTINF")
            segments.append(MediaSegment(line, pending))
            pending = None
    if pending is not None:
        raise ValueError("EXTINF without a segment URI")
    return MediaPlaylist(init_uri, tuple(segments), "#EXT-X-ENDLIST" in lines)


def measure_bitrate(playlist: MediaPlaylist, sizes: Mapping[str, int]) -> RungBitrate:
    """Peak and average bit rate of a rung's media segments (`sizes` by segment URI).

    Raises:
        ValueError: the playlist has no segment, or a segment has no duration.
    """
    segments = playlist.segments
    if not segments:
        raise ValueError("playlist without segments")
    if any(s.duration_s <= 0 for s in segments):
        raise ValueError("segment with zero duration")
    total_bits = sum(sizes[s.uri] * 8 for s in segments)
    total_s = sum(s.duration_s for s in segments)
    peak_candidates = list(segments)
    if len(segments) > 1 and segments[-1].duration_s < MIN_PEAK_SEGMENT_S:
        peak_candidates.pop()
    peak = max(sizes[s.uri] * 8 / s.duration_s for s in peak_candidates)
    return RungBitrate(peak_bps=math.ceil(peak), average_bps=math.ceil(total_bits / total_s))


def codecs_by_playlist(ffmpeg_master: str) -> dict[str, str]:
    """CODECS of each variant of ffmpeg's master playlist, keyed by the variant's URI."""
    found: dict[str, str] = {}
    pending: str | None = None
    for raw in ffmpeg_master.splitlines():
        line = raw.strip()
        if line.startswith("#EXT-X-STREAM-INF:"):
            match = _CODECS.search(line)
            pending = match.group(1) if match else ""
        elif line and not line.startswith("#") and pending is not None:
            found[line] = pending
            pending = None
    return found


def render_master(variants: Sequence[VariantEntry]) -> str:
    """The master playlist, variants in the given order (highest rung first)."""
    lines = ["#EXTM3U", "#EXT-X-VERSION:7", "#EXT-X-INDEPENDENT-SEGMENTS"]
    for v in variants:
        attributes = [
            f"BANDWIDTH={v.bitrate.peak_bps}",
            f"AVERAGE-BANDWIDTH={v.bitrate.average_bps}",
            f'CODECS="{v.codecs}"',
            f"RESOLUTION={v.width}x{v.height}",
            f"FRAME-RATE={float(v.frame_rate):.3f}",
        ]
        lines += ["#EXT-X-STREAM-INF:" + ",".join(attributes), v.playlist_uri]
    return "\n".join(lines) + "\n"
