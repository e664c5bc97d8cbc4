"""The ffmpeg command lines of the ladder (pure: argv lists, no I/O).

One process decodes the source once, normalises it (constant frame rate, 4:2:0), splits the
picture into one scaler per rung plus a stills branch, and encodes every rung with libx264
(capped VBR: -b:v, -maxrate, -bufsize per rung) and AAC, muxed per rung into fMP4 HLS
segments of 2 s. Keyframes: GOP and minimum GOP of exactly 2 s, scene-cut off, and
`-force_key_frames` on time (robust to variable frame rate): identical keyframe times on
every rung, so segment boundaries line up across rungs.

Audio is muxed into each rung (one AAC encode per rung, cheap) rather than a separate audio
rendition: every variant is self-contained and file names stay `<rung>_...`.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from origin.ladder import KEYFRAME_INTERVAL_S, LadderPlan, PlannedRung
from origin.media_names import MASTER_PLAYLIST
from origin.media_probe import DEMUXER_WHITELIST, SourceMedia
from origin.media_tool import PROTOCOL_WHITELIST

STILLS_COUNT = 4
"""Stills taken at evenly spaced times (keyframe_01.jpg ...), for moderation/thumbnails."""
STILLS_SHORT_SIDE = 360


@dataclass(frozen=True)
class EncoderSettings:
    preset: str
    threads: int


def _input_args(source: Path, threads: int, duration_s: float) -> list[str]:
    return [
        "ffmpeg",
        "-hide_banner",
        "-nostdin",
        "-y",
        "-v",
        "error",
        "-protocol_whitelist",
        PROTOCOL_WHITELIST,
        "-format_whitelist",
        DEMUXER_WHITELIST,
        "-threads",
        str(threads),
        # Never read past the probed duration (+1 s): a container that understates its
        # length cannot make the transcode exceed the duration limit.
        "-t",
        f"{duration_s + 1:.3f}",
        "-i",
        "file:" + str(source),
    ]


def _scale(rung: PlannedRung) -> str:
    return f"scale={rung.width}:{rung.height}:flags=bicubic,setsar=1"


def _video_encoder_args(plan: LadderPlan, rungs: tuple[PlannedRung, ...]) -> list[str]:
    gop = str(plan.gop_frames)
    args = [
        "-c:v",
        "libx264",
        "-profile:v",
        "high",
        "-pix_fmt",
        "yuv420p",
        "-g",
        gop,
        "-keyint_min",
        gop,
        "-sc_threshold",
        "0",
        "-force_key_frames",
        f"expr:gte(t,n_forced*{KEYFRAME_INTERVAL_S})",
    ]
    for index, rung in enumerate(rungs):
        args += [
            f"-b:v:{index}",
            f"{rung.video_kbps}k",
            f"-maxrate:v:{index}",
            f"{rung.maxrate_kbps}k",
            f"-bufsize:v:{index}",
            f"{rung.bufsize_kbps}k",
        ]
    return args


def _audio_encoder_args(rungs: tuple[PlannedRung, ...]) -> list[str]:
    args = ["-c:a", "aac", "-ac", "2", "-ar", "48000"]
    for index, rung in enumerate(rungs):
        args += [f"-b:a:{index}", f"{rung.audio_kbps}k"]
    return args


def _hls_output_args(
    out_dir: Path, rungs: tuple[PlannedRung, ...], has_audio: bool, master: bool
) -> list[str]:
    stream_map = " ".join(
        f"v:{i},a:{i},name:{rung.name}" if has_audio else f"v:{i},name:{rung.name}"
        for i, rung in enumerate(rungs)
    )
    args = [
        "-f",
        "hls",
        "-hls_time",
        str(KEYFRAME_INTERVAL_S),
        "-hls_playlist_type",
        "vod",
        "-hls_segment_type",
        "fmp4",
        "-hls_flags",
        "independent_segments",
        "-hls_fmp4_init_filename",
        # ffmpeg 5.1 expands %v here only when there are several variants.
        "%v_init.mp4" if len(rungs) > 1 else f"{rungs[0].name}_init.mp4",
        "-hls_segment_filename",
        str(out_dir / "%v_%03d.m4s"),
        "-var_stream_map",
        stream_map,
    ]
    if master:
        args += ["-master_pl_name", MASTER_PLAYLIST]
    return [*args, str(out_dir / "%v.m3u8")]


def _stills_filter(media: SourceMedia, plan: LadderPlan) -> str:
    portrait = media.height > media.width
    short = min(STILLS_SHORT_SIDE, min(media.width, media.height))
    size = f"{short}:-2" if portrait else f"-2:{short}"
    rate = max(STILLS_COUNT / max(media.duration_s, 0.1), 0.01)
    return f"fps={rate:.6f},scale={size},setsar=1"


def ladder_argv(
    source: Path,
    out_dir: Path,
    media: SourceMedia,
    plan: LadderPlan,
    encoder: EncoderSettings,
    *,
    with_stills: bool = True,
    progress: bool = True,
) -> list[str]:
    """One ffmpeg process for the whole ladder (and the stills) into `out_dir`."""
    rungs = plan.rungs
    branches = len(rungs) + (1 if with_stills else 0)
    graph = [
        f"[0:v:0]fps={plan.frame_rate},format=yuv420p,split={branches}"
        + "".join(f"[s{i}]" for i in range(branches))
    ]
    graph += [f"[s{i}]{_scale(rung)}[v{i}]" for i, rung in enumerate(rungs)]
    if with_stills:
        graph.append(f"[s{len(rungs)}]{_stills_filter(media, plan)}[stills]")
    argv = _input_args(source, encoder.threads, media.duration_s)
    argv += ["-filter_complex_threads", "1", "-filter_complex", ";".join(graph)]
    if progress:
        argv += ["-progress", "pipe:1", "-stats_period", "0.5"]
    for i in range(len(rungs)):
        argv += ["-map", f"[v{i}]"]
        if media.has_audio:
            argv += ["-map", "0:a:0"]
    argv += ["-threads", str(encoder.threads), "-preset", encoder.preset]
    argv += _video_encoder_args(plan, rungs)
    if media.has_audio:
        argv += _audio_encoder_args(rungs)
    argv += _hls_output_args(out_dir, rungs, media.has_audio, master=True)
    if with_stills:
        argv += [
            "-map",
            "[stills]",
            "-frames:v",
            str(STILLS_COUNT),
            "-c:v",
            "mjpeg",
            "-q:v",
            "3",
            "-f",
            "image2",
            str(out_dir / "keyframe_%02d.jpg"),
        ]
    return argv


def single_rung_argv(
    source: Path,
    out_dir: Path,
    media: SourceMedia,
    plan: LadderPlan,
    rung_index: int,
    encoder: EncoderSettings,
) -> list[str]:
    """One rung alone, with the ladder's exact settings (the benchmark's baseline)."""
    rung = plan.rungs[rung_index]
    one = LadderPlan(rungs=(rung,), frame_rate=plan.frame_rate)
    argv = _input_args(source, encoder.threads, media.duration_s)
    argv += [
        "-filter_complex_threads",
        "1",
        "-filter_complex",
        f"[0:v:0]fps={plan.frame_rate},format=yuv420p,{_scale(rung)}[v0]",
        "-map",
        "[v0]",
    ]
    if media.has_audio:
        argv += ["-map", "0:a:0"]
    argv += ["-threads", str(encoder.threads), "-preset", encoder.preset]
    argv += _video_encoder_args(one, one.rungs)
    if media.has_audio:
        argv += _audio_encoder_args(one.rungs)
    return argv + _hls_output_args(out_dir, one.rungs, media.has_audio, master=False)
