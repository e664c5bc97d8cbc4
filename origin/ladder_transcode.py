"""One ladder transcode: the ffmpeg process, then the measured master playlist.

`transcode_ladder` runs the single ffmpeg process of `transcode_command.ladder_argv` into a
work folder, reporting percent done from ffmpeg's `-progress` output, then (off the loop)
measures every rung's segments and rewrites `master.m3u8`, picks the poster among the stills
and records the renditions in `renditions.json` (read back when the same content is
uploaded again).

Playability: one process feeds every rung the same decoded frames, so all rungs advance in
lockstep and complete together, when ffmpeg exits; the master rewrite then takes
milliseconds. A reel is therefore playable (every rung at once) as soon as the process ends,
and a rung never appears in a master before its playlist has ENDLIST.
"""

from __future__ import annotations

import asyncio
import shutil
from collections.abc import Callable
from pathlib import Path

from origin import renditions as renditions_json
from origin.errors import ToolFailed
from origin.hls_master import (
    VariantEntry,
    codecs_by_playlist,
    measure_bitrate,
    parse_media_playlist,
    render_master,
)
from origin.ladder import LadderPlan
from origin.media_names import (
    MASTER_PLAYLIST,
    POSTER,
    RENDITIONS_FILE,
    is_segment_name,
    keyframe_name,
    rung_playlist,
)
from origin.media_probe import SourceMedia
from origin.media_tool import run_tool
from origin.transcode_command import STILLS_COUNT, EncoderSettings, ladder_argv
from protos import origin_pb2


def percent_done(progress: dict[str, str], duration_s: float) -> int | None:
    """Percent of the source transcoded per one ffmpeg `-progress` block (at most 99 until
    the process has exited and the master is written)."""
    raw = progress.get("out_time_us") or progress.get("out_time_ms")  # both are microseconds
    if not raw or not raw.lstrip("-").isdigit() or duration_s <= 0:
        return None
    return max(0, min(99, int(int(raw) / 1e6 / duration_s * 100)))


async def transcode_ladder(
    source: Path,
    work_dir: Path,
    media: SourceMedia,
    plan: LadderPlan,
    encoder: EncoderSettings,
    timeout_s: float,
    on_percent: Callable[[int], None] | None = None,
) -> list[origin_pb2.Rendition]:
    """Transcodes `source` into `work_dir` and writes the measured master.

    Raises:
        ToolFailed: ffmpeg failed or ran out of time.
        ValueError: ffmpeg's output is not what the ladder asked for.
    """

    def on_progress(block: dict[str, str]) -> None:
        percent = percent_done(block, media.duration_s)
        if percent is not None and on_percent is not None:
            on_percent(percent)

    argv = ladder_argv(source, work_dir, media, plan, encoder)
    result = await run_tool(argv, timeout_s=timeout_s, on_progress=on_progress)
    if result.returncode != 0:
        raise ToolFailed(f"ffmpeg exited with status {result.returncode}", result.stderr_tail)
    return await asyncio.to_thread(finalize_ladder, work_dir, plan)


def finalize_ladder(work_dir: Path, plan: LadderPlan) -> list[origin_pb2.Rendition]:
    """Rewrites the master with measured rates, writes the poster and `renditions.json`."""
    codecs = codecs_by_playlist((work_dir / MASTER_PLAYLIST).read_text())
    variants = []
    for rung in plan.rungs:
        playlist_name = rung_playlist(rung.name)
        playlist = parse_media_playlist((work_dir / playlist_name).read_text())
        if not playlist.ended:
            raise ValueError(f"{playlist_name} has no ENDLIST")
        # Edges rely on these names: fail the transcode rather than publish others.
        names = [playlist.init_uri or "", *(s.uri for s in playlist.segments)]
        if names[0] != f"{rung.name}_init.mp4" or not all(
            is_segment_name(n) and n.startswith(f"{rung.name}_") for n in names
        ):
            raise ValueError(f"{playlist_name} names unexpected files: {names[:3]}")
        sizes = {s.uri: (work_dir / s.uri).stat().st_size for s in playlist.segments}
        variants.append(
            VariantEntry(
                playlist_uri=playlist_name,
                width=rung.width,
                height=rung.height,
                frame_rate=plan.frame_rate,
                codecs=codecs.get(playlist_name) or "avc1.640028",
                bitrate=measure_bitrate(playlist, sizes),
            )
        )
    partial = work_dir / (MASTER_PLAYLIST + ".tmp")
    partial.write_text(render_master(variants))
    partial.replace(work_dir / MASTER_PLAYLIST)
    stills = [work_dir / keyframe_name(i) for i in range(1, STILLS_COUNT + 1)]
    existing = [s for s in stills if s.is_file()]
    if existing:
        # The second still (a quarter in) avoids the black or title first frame of many clips.
        shutil.copyfile(existing[min(1, len(existing) - 1)], work_dir / POSTER)
    renditions = [
        origin_pb2.Rendition(
            name=rung.name,
            width=rung.width,
            height=rung.height,
            bandwidth=v.bitrate.peak_bps,
            average_bandwidth=v.bitrate.average_bps,
        )
        for rung, v in zip(plan.rungs, variants, strict=True)
    ]
    (work_dir / RENDITIONS_FILE).write_text(renditions_json.to_json(renditions))
    return renditions


def read_renditions(media_dir: Path) -> list[origin_pb2.Rendition]:
    """The renditions of an already published media folder."""
    return renditions_json.from_json((media_dir / RENDITIONS_FILE).read_text())


def stills_of(media_dir: Path) -> tuple[Path, ...]:
    candidates = [media_dir / POSTER] + [
        media_dir / keyframe_name(i) for i in range(1, STILLS_COUNT + 1)
    ]
    return tuple(p for p in candidates if p.is_file())
