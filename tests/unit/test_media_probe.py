"""What the probe accepts and the reasons it gives (ffprobe's report in, decision out)."""

from __future__ import annotations

from fractions import Fraction
from typing import Any

import pytest

from origin.errors import UnplayableMedia
from origin.media_probe import ProbeLimits, check_probe

LIMITS = ProbeLimits(
    max_duration_s=180,
    min_duration_s=0.5,
    min_short_side_px=144,
    max_long_side_px=4096,
    max_aspect_ratio=4,
    timeout_s=10,
    threads=1,
)
MP4 = "mov,mp4,m4a,3gp,3g2,mj2"


def report(
    *,
    container: str = MP4,
    duration: str = "10.0",
    video: dict[str, Any] | None = None,
    audio: bool = True,
) -> dict[str, Any]:
    streams: list[dict[str, Any]] = []
    if video is not None:
        streams.append({"codec_type": "video", **video})
    if audio:
        streams.append(
            {"codec_type": "audio", "codec_name": "aac", "nb_frames": "10", "nb_read_packets": "10"}
        )
    return {"format": {"format_name": container, "duration": duration}, "streams": streams}


def h264(width: int = 1080, height: int = 1920, **extra: Any) -> dict[str, Any]:
    return {
        "codec_name": "h264",
        "width": width,
        "height": height,
        "avg_frame_rate": "30/1",
        "r_frame_rate": "30/1",
        "nb_frames": "300",
        "nb_read_packets": "300",
        **extra,
    }


def reason(data: dict[str, Any], returncode: int = 0, stderr: str = "") -> str:
    with pytest.raises(UnplayableMedia) as error:
        check_probe(returncode, data, stderr, LIMITS)
    return str(error.value)


def test_a_normal_vertical_video_is_accepted() -> None:
    media = check_probe(0, report(video=h264()), "", LIMITS)
    assert (media.width, media.height, media.duration_s) == (1080, 1920, 10.0)
    assert media.frame_rate == Fraction(30)
    assert media.has_audio


def test_a_phone_rotation_swaps_the_displayed_sides() -> None:
    rotated = h264(1920, 1080, side_data_list=[{"rotation": -90}])
    media = check_probe(0, report(video=rotated), "", LIMITS)
    assert (media.width, media.height) == (1080, 1920)


def test_a_video_without_audio_is_accepted() -> None:
    assert not check_probe(0, report(video=h264(), audio=False), "", LIMITS).has_audio


def test_unreadable_input_names_ffprobes_reason_without_paths() -> None:
    assert "moov atom not found" in reason(
        {}, 1, "[mov,mp4,m4a,3gp,3g2,mj2 @ 0x1] moov atom not found\ninput: Invalid data"
    )
    assert reason({}, 1, "") == "not a video file ffprobe can read (exit status 1)"


@pytest.mark.parametrize(
    ("data", "expected"),
    [
        (report(container="png_pipe", video={"codec_name": "png"}, audio=False), "an image"),
        (report(container="image2", video={"codec_name": "mjpeg"}, audio=False), "an image"),
        (report(video={"codec_name": "mjpeg", "width": 9, "height": 9}), "still image"),
        (report(container="mp3", audio=True), "audio only"),
        (report(audio=True), "audio only"),
        (report(container="bin", video={"codec_name": "bintext"}), "not a supported"),
        (report(video=h264(nb_read_packets="120")), "truncated file"),
        (report(video=h264(), duration="181"), "too long: 181.0 s"),
        (report(video=h264(), duration="0.04"), "too short"),
        (report(video=h264(100, 200)), "absurd dimensions 100x200"),
        (report(video=h264(4000, 5000)), "absurd dimensions 4000x5000"),
        (report(video=h264(2000, 200)), "aspect ratio"),
        (report(video=h264(codec_name="theora")), "video codec theora"),
    ],
)
def test_unplayable_files_are_refused_with_a_reason(data: dict[str, Any], expected: str) -> None:
    assert expected in reason(data)


def test_a_partial_file_reported_by_the_demuxer_is_truncated() -> None:
    assert "truncated" in reason(report(video=h264()), 0, "[mov @ 0x1] stream 1: partial file")


def test_the_probe_never_opens_playlist_or_script_demuxers() -> None:
    from pathlib import Path

    from origin.media_probe import ffprobe_argv

    argv = ffprobe_argv(Path("/x/upload"))
    allowed = argv[argv.index("-format_whitelist") + 1].split(",")
    assert "mov" in allowed
    assert not {"hls", "concat", "ffconcat", "tee", "data"} & set(allowed)
