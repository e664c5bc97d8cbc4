"""Is an uploaded file a playable video? ffprobe first, then a one-second decode.

`check_probe` is pure: it turns ffprobe's JSON (plus its stderr) into a `SourceMedia` or
raises `UnplayableMedia` with a reason a person can act on (empty, not a video container,
image, audio only, truncated, too long, absurd dimensions, ...). `probe_file` runs the tools.

Containers and codecs are whitelisted: besides rejecting junk early, this keeps ffmpeg's
large parser surface away from formats no phone produces.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Mapping
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path
from typing import Any

from origin.errors import UnplayableMedia
from origin.media_tool import PROTOCOL_WHITELIST, run_tool

logger = logging.getLogger(__name__)

# ffprobe's format_name of the accepted containers (its demuxer names, comma-joined).
ACCEPTED_CONTAINERS = frozenset({"mov,mp4,m4a,3gp,3g2,mj2", "matroska,webm", "mpegts"})
# The demuxers above, for ffmpeg's `-format_whitelist`.
DEMUXER_WHITELIST = "mov,matroska,mpegts"
# What ffprobe may open: the accepted containers plus image and audio demuxers, so those
# files still get a specific reason. Never playlist or script demuxers (hls, concat, ...):
# the bad-input suite found ffprobe following an uploaded HLS playlist's `file:` entries,
# reading local files before the upload was refused.
PROBE_DEMUXER_WHITELIST = (
    f"{DEMUXER_WHITELIST},gif,image2,png_pipe,jpeg_pipe,webp_pipe,bmp_pipe,tiff_pipe,"
    "mp3,aac,wav,ogg,flac"
)
ACCEPTED_VIDEO_CODECS = frozenset({"h264", "hevc", "vp8", "vp9", "av1", "mpeg4", "mpeg2video"})
IMAGE_CODECS = frozenset({"png", "mjpeg", "jpegls", "bmp", "gif", "webp", "tiff", "apng"})


@dataclass(frozen=True)
class ProbeLimits:
    max_duration_s: float
    min_duration_s: float
    min_short_side_px: int
    max_long_side_px: int
    max_aspect_ratio: float
    timeout_s: float
    threads: int


@dataclass(frozen=True)
class SourceMedia:
    """What the transcoder needs to know about an accepted upload."""

    width: int
    """Displayed width (after the rotation a phone recorded in the metadata)."""
    height: int
    duration_s: float
    frame_rate: Fraction | None
    has_audio: bool
    video_codec: str
    container: str


def _fraction(text: object) -> Fraction | None:
    try:
        value = Fraction(str(text))
    except (ValueError, ZeroDivisionError):
        return None
    return value if value > 0 else None


def _float(text: object) -> float | None:
    try:
        return float(str(text))
    except ValueError:
        return None


def _rotation(stream: Mapping[str, Any]) -> int:
    for side_data in stream.get("side_data_list", []) or []:
        if "rotation" in side_data:
            return int(float(side_data["rotation"]))
    rotate = (stream.get("tags") or {}).get("rotate")
    return int(float(rotate)) if rotate is not None else 0


def _first_error_line(stderr: str) -> str:
    for line in stderr.splitlines():
        # "[mov,mp4,... @ 0x55...] moov atom not found" -> "moov atom not found"
        text = line.split("] ", 1)[-1].strip()
        if text:
            return text[:200]
    return "no details"


def check_probe(
    returncode: int, report: Mapping[str, Any], stderr: str, limits: ProbeLimits
) -> SourceMedia:
    """Validates ffprobe's JSON report (`-show_format -show_streams -count_packets`).

    Raises:
        UnplayableMedia: with the first reason the file is not a playable video.
    """
    if returncode != 0 or "format" not in report:
        detail = _first_error_line(stderr) if stderr.strip() else f"exit status {returncode}"
        if "moov atom not found" in stderr:
            raise UnplayableMedia(f"truncated or incomplete MP4: {detail}")
        raise UnplayableMedia(f"not a video file ffprobe can read ({detail})")
    container = str(report["format"].get("format_name", ""))
    streams: list[Mapping[str, Any]] = list(report.get("streams", []))
    videos = [
        s
        for s in streams
        if s.get("codec_type") == "video" and not (s.get("disposition") or {}).get("attached_pic")
    ]
    audios = [s for s in streams if s.get("codec_type") == "audio" and s.get("codec_name")]
    if container.endswith("_pipe") or container in ("image2", "gif", "webp"):
        raise UnplayableMedia(f"an image ({container}), not a video")
    if videos and videos[0].get("codec_name") in IMAGE_CODECS:
        raise UnplayableMedia(f"a still image ({videos[0].get('codec_name')}), not a video")
    if container not in ACCEPTED_CONTAINERS:
        if not videos and audios:
            raise UnplayableMedia(f"audio only ({container}): no video stream")
        raise UnplayableMedia(
            f"not a supported video container (detected {container or 'nothing'});"
            " use MP4, MOV, WebM/Matroska or MPEG-TS"
        )
    if not videos:
        if audios:
            raise UnplayableMedia("audio only: the file has no video stream")
        raise UnplayableMedia("the file has no video stream")
    video = videos[0]
    codec = str(video.get("codec_name", ""))
    if codec not in ACCEPTED_VIDEO_CODECS:
        raise UnplayableMedia(f"video codec {codec or 'unknown'} is not supported")

    for stream in (video, *audios[:1]):
        declared = stream.get("nb_frames")
        read = stream.get("nb_read_packets")
        if declared and read is not None and int(read) < int(declared):
            raise UnplayableMedia(
                f"truncated file: {stream.get('codec_type')} stream has {read} of its"
                f" {declared} packets"
            )
    if "partial file" in stderr:
        raise UnplayableMedia(f"truncated file: {_first_error_line(stderr)}")

    duration = _float(report["format"].get("duration")) or _float(video.get("duration"))
    if duration is None:
        raise UnplayableMedia("the video has no known duration")
    if duration < limits.min_duration_s:
        raise UnplayableMedia(f"too short: {duration:.2f} s (at least {limits.min_duration_s:g} s)")
    if duration > limits.max_duration_s:
        raise UnplayableMedia(f"too long: {duration:.1f} s (at most {limits.max_duration_s:g} s)")

    width, height = int(video.get("width") or 0), int(video.get("height") or 0)
    if abs(_rotation(video)) % 180 == 90:
        width, height = height, width
    short, long = min(width, height), max(width, height)
    if short < limits.min_short_side_px:
        raise UnplayableMedia(
            f"absurd dimensions {width}x{height}: the short side must be at least"
            f" {limits.min_short_side_px} px"
        )
    if long > limits.max_long_side_px:
        raise UnplayableMedia(
            f"absurd dimensions {width}x{height}: the long side must be at most"
            f" {limits.max_long_side_px} px"
        )
    if long / short > limits.max_aspect_ratio:
        raise UnplayableMedia(
            f"absurd dimensions {width}x{height}: aspect ratio above {limits.max_aspect_ratio:g}:1"
        )
    rate = _fraction(video.get("avg_frame_rate")) or _fraction(video.get("r_frame_rate"))
    return SourceMedia(
        width=width,
        height=height,
        duration_s=duration,
        frame_rate=rate,
        has_audio=bool(audios),
        video_codec=codec,
        container=container,
    )


def ffprobe_argv(path: Path) -> list[str]:
    return [
        "ffprobe",
        "-hide_banner",
        "-v",
        "error",
        "-protocol_whitelist",
        PROTOCOL_WHITELIST,
        "-format_whitelist",
        PROBE_DEMUXER_WHITELIST,
        "-count_packets",  # demuxes the whole file (no decoding): finds truncation cheaply
        "-show_format",
        "-show_streams",
        "-of",
        "json",
        "file:" + str(path),
    ]


def decode_check_argv(path: Path, media: SourceMedia, threads: int) -> list[str]:
    """ffmpeg decoding the first second of video (and audio): a file can have a clean
    container around a stream the decoder refuses."""
    argv = [
        "ffmpeg",
        "-hide_banner",
        "-nostdin",
        "-v",
        "error",
        "-xerror",
        "-protocol_whitelist",
        PROTOCOL_WHITELIST,
        "-format_whitelist",
        DEMUXER_WHITELIST,
        "-threads",
        str(threads),
        "-t",
        "1",
        "-i",
        "file:" + str(path),
        "-map",
        "0:v:0",
    ]
    if media.has_audio:
        argv += ["-map", "0:a:0"]
    return [*argv, "-f", "null", "-"]


async def probe_file(path: Path, size_bytes: int, limits: ProbeLimits) -> SourceMedia:
    """Probes an uploaded file of `size_bytes`.

    Raises:
        UnplayableMedia: the file is not a playable video (or the probe ran out of time).
    """
    if size_bytes == 0:
        raise UnplayableMedia("the file is empty")

    def scrub(stderr: str) -> str:  # the origin's paths are nobody's business
        return stderr.replace("file:" + str(path), "input").replace(str(path), "input")

    try:
        result = await run_tool(ffprobe_argv(path), timeout_s=limits.timeout_s)
        if result.returncode < 0:
            # Killed by a signal. Seen (SIGSEGV before exec) while tools were spawned with
            # fork() from a process full of gRPC threads; media_tool now spawns without
            # fork handlers, and one retry keeps a stray crash from rejecting a good file.
            logger.warning(
                "ffprobe killed by a signal, retrying once",
                extra={"fields": {"signal": -result.returncode}},
            )
            result = await run_tool(ffprobe_argv(path), timeout_s=limits.timeout_s)
        try:
            report = json.loads(result.stdout or b"{}")
        except ValueError:
            report = {}
        media = check_probe(result.returncode, report, scrub(result.stderr_tail), limits)
        decoded = await run_tool(
            decode_check_argv(path, media, limits.threads), timeout_s=limits.timeout_s
        )
    except UnplayableMedia:
        raise
    except Exception as exc:  # ToolFailed (time limit) or an OS error starting the tool
        raise UnplayableMedia(f"the file could not be probed in time: {exc}") from exc
    if decoded.returncode != 0:
        raise UnplayableMedia(
            f"the streams cannot be decoded: {_first_error_line(scrub(decoded.stderr_tail))}"
        )
    return media
