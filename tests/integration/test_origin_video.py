"""The origin's video path through a real origin process, real ffmpeg and real Cassandra:
uploads (limits, probe errors, resume), the one-process ladder (renditions, 2 s segments,
keyframes aligned across rungs, measured master), serving to edges, and no leftover files."""

from __future__ import annotations

import random
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc

from origin.hls_master import measure_bitrate, parse_media_playlist
from protos import origin_pb2, origin_pb2_grpc
from tests.integration.conftest import ServiceProcess, free_port
from tests.integration.video_clips import (
    keyframe_times,
    make_audio,
    make_clip,
    make_image,
    stream_info,
)

pytestmark = [pytest.mark.integration, pytest.mark.timeout(120)]

CHUNK_BYTES = 64 * 1024


@dataclass
class Origin:
    process: ServiceProcess
    stub: origin_pb2_grpc.OriginServiceStub
    channel: grpc.Channel
    media_root: Path


@pytest.fixture
def start_origin(
    cassandra: str,
    keyspace: str,
    tmp_path: Path,
    start_service: Callable[..., ServiceProcess],
) -> Iterator[Callable[..., Origin]]:
    channels: list[grpc.Channel] = []

    def start(**settings: str) -> Origin:
        address = f"127.0.0.1:{free_port()}"
        media_root = tmp_path / "media"
        env = {
            "REELSTREAM_ORIGIN_GRPC_ADDRESS": address,
            "REELSTREAM_ORIGIN_METRICS_PORT": "0",
            "REELSTREAM_ORIGIN_KEYSPACE": keyspace,
            "REELSTREAM_ORIGIN_MEDIA_DIR": str(media_root),
            "REELSTREAM_ORIGIN_FFMPEG_THREADS": "1",
            "REELSTREAM_ORIGIN_X264_PRESET": "ultrafast",
            "REELSTREAM_ORIGIN_PROGRESS_WRITE_INTERVAL_S": "0.2",
            "REELSTREAM_ORIGIN_SEGMENT_CHUNK_BYTES": str(CHUNK_BYTES),
        }
        env.update({f"REELSTREAM_ORIGIN_{k.upper()}": v for k, v in settings.items()})
        process = start_service("origin", "origin", env, address)
        channel = grpc.insecure_channel(address)
        channels.append(channel)
        return Origin(process, origin_pb2_grpc.OriginServiceStub(channel), channel, media_root)

    yield start
    for channel in channels:
        channel.close()


def upload_requests(
    data: bytes,
    *,
    upload_id: str = "",
    start: int = 0,
    stop: int | None = None,
    chunk_bytes: int = CHUNK_BYTES,
    total_bytes: int | None = None,
) -> Iterator[origin_pb2.UploadRequest]:
    yield origin_pb2.UploadRequest(
        metadata=origin_pb2.UploadMetadata(
            upload_id=upload_id,
            creator_id=7,
            caption="a test pattern",
            hashtags=["test"],
            total_bytes=len(data) if total_bytes is None else total_bytes,
            filename="clip.mp4",
        )
    )
    end = len(data) if stop is None else stop
    for offset in range(start, end, chunk_bytes):
        yield origin_pb2.UploadRequest(
            chunk=data[offset : min(offset + chunk_bytes, end)], offset=offset
        )


def upload(origin: Origin, data: bytes) -> origin_pb2.UploadResponse:
    response: origin_pb2.UploadResponse = origin.stub.Upload(upload_requests(data), timeout=60)
    return response


def wait_for_state(
    origin: Origin, reel_id: int, timeout_s: float = 60.0
) -> tuple[origin_pb2.Reel, list[int]]:
    """Polls GetReel until the reel leaves UPLOADING/PROCESSING; returns the reel and every
    progress percent seen on the way."""
    deadline = time.monotonic() + timeout_s
    seen: list[int] = []
    while True:
        reel: origin_pb2.Reel = origin.stub.GetReel(
            origin_pb2.GetReelRequest(reel_id=reel_id), timeout=5
        )
        if reel.state == origin_pb2.REEL_STATE_PROCESSING:
            seen.append(reel.progress_percent)
        elif reel.state != origin_pb2.REEL_STATE_UPLOADING:
            return reel, seen
        assert time.monotonic() < deadline, f"reel {reel_id} still {reel.state}"
        time.sleep(0.1)


def fetch_segment(origin: Origin, reel_id: int, name: str) -> tuple[bytes, int, str, int]:
    """Bytes, declared total, etag and number of messages of one segment."""
    chunks = list(
        origin.stub.GetSegment(origin_pb2.GetSegmentRequest(reel_id=reel_id, name=name), timeout=10)
    )
    return b"".join(c.data for c in chunks), chunks[0].total_bytes, chunks[0].etag, len(chunks)


def manifest(origin: Origin, reel_id: int, name: str) -> str:
    body: bytes = origin.stub.GetManifest(
        origin_pb2.GetManifestRequest(reel_id=reel_id, name=name), timeout=10
    ).body
    return body.decode()


def master_attributes(master: str) -> dict[str, dict[str, str]]:
    """Attributes of each variant of a master playlist, keyed by its playlist URI."""
    lines = master.splitlines()
    variants = {}
    for index, line in enumerate(lines):
        if line.startswith("#EXT-X-STREAM-INF:"):
            attributes: dict[str, str] = {}
            body = line.split(":", 1)[1]
            for part in _split_attributes(body):
                key, _, value = part.partition("=")
                attributes[key] = value.strip('"')
            variants[lines[index + 1]] = attributes
    return variants


def _split_attributes(body: str) -> list[str]:
    parts, current, quoted = [], "", False
    for char in body:
        if char == '"':
            quoted = not quoted
        if char == "," and not quoted:
            parts.append(current)
            current = ""
        else:
            current += char
    return [*parts, current]


def download_rung(origin: Origin, reel_id: int, rung: str, into: Path) -> Path:
    """Init segment + media segments of a rung concatenated into one playable fMP4 file,
    checking on the way that the master's numbers match the files."""
    playlist = parse_media_playlist(manifest(origin, reel_id, f"{rung}.m3u8"))
    assert playlist.ended
    assert playlist.init_uri == f"{rung}_init.mp4"
    out = into / f"{reel_id}-{rung}.mp4"
    with out.open("wb") as file:
        data, total, etag, _ = fetch_segment(origin, reel_id, playlist.init_uri)
        assert total == len(data)
        assert etag
        file.write(data)
        for segment in playlist.segments:
            assert "/" not in segment.uri
            assert segment.uri.startswith(f"{rung}_")
            data, total, _, _ = fetch_segment(origin, reel_id, segment.uri)
            assert total == len(data)
            file.write(data)
    return out


def check_ladder(
    origin: Origin, reel: origin_pb2.Reel, tmp_path: Path, expected: dict[str, tuple[int, int]]
) -> dict[str, list[float]]:
    """Renditions, master attributes measured from the served files, ~2 s segments, and the
    keyframe times of each rung (returned)."""
    assert {r.name: (r.width, r.height) for r in reel.renditions} == expected
    master = manifest(origin, reel.reel_id, "master.m3u8")
    variants = master_attributes(master)
    assert list(variants) == [f"{name}.m3u8" for name in expected]
    keyframes = {}
    for rendition in reel.renditions:
        attributes = variants[f"{rendition.name}.m3u8"]
        playlist = parse_media_playlist(manifest(origin, reel.reel_id, f"{rendition.name}.m3u8"))
        sizes = {
            s.uri: len(fetch_segment(origin, reel.reel_id, s.uri)[0]) for s in playlist.segments
        }
        measured = measure_bitrate(playlist, sizes)
        assert int(attributes["BANDWIDTH"]) == measured.peak_bps == rendition.bandwidth
        assert int(attributes["AVERAGE-BANDWIDTH"]) == measured.average_bps
        assert measured.average_bps == rendition.average_bandwidth
        assert attributes["RESOLUTION"] == f"{rendition.width}x{rendition.height}"
        assert attributes["CODECS"].startswith("avc1.")
        assert float(attributes["FRAME-RATE"]) > 0
        durations = [s.duration_s for s in playlist.segments]
        assert all(abs(d - 2.0) < 0.1 for d in durations[:-1]), durations
        assert 0 < durations[-1] <= 2.1
        rung_file = download_rung(origin, reel.reel_id, rendition.name, tmp_path)
        video = next(s for s in stream_info(rung_file)["streams"] if s["codec_type"] == "video")  # type: ignore[index, union-attr]
        assert (video["width"], video["height"]) == (rendition.width, rendition.height)
        times = keyframe_times(rung_file)
        # Relative to the first (the source's audio priming may shift the start a little).
        keyframes[rendition.name] = [round(t - times[0], 3) for t in times]
    times = list(keyframes.values())
    assert all(t == times[0] for t in times), keyframes  # aligned across rungs
    return keyframes


def test_a_landscape_upload_becomes_a_published_aligned_ladder(
    start_origin: Callable[..., Origin], tmp_path: Path
) -> None:
    origin = start_origin()
    clip = make_clip(tmp_path / "landscape.mp4", 640, 360, 5)
    response = upload(origin, clip.read_bytes())
    assert response.state == origin_pb2.REEL_STATE_PROCESSING
    assert response.bytes_received == clip.stat().st_size
    reel, _progress = wait_for_state(origin, response.reel_id)
    assert reel.state == origin_pb2.REEL_STATE_PUBLISHED, reel
    assert reel.progress_percent == 100
    assert 4900 <= reel.duration_ms <= 5100
    assert len(reel.content_hash) == 64
    keyframes = check_ladder(origin, reel, tmp_path, {"360p": (640, 360), "240p": (426, 240)})
    assert keyframes["360p"] == [0.0, 2.0, 4.0]
    variants = master_attributes(manifest(origin, reel.reel_id, "master.m3u8"))
    assert "mp4a.40.2" in variants["360p.m3u8"]["CODECS"]
    assert variants["360p.m3u8"]["FRAME-RATE"] == "30.000"
    # The segment arrives in several messages; size and etag come with the first.
    data, total, etag, messages = fetch_segment(origin, reel.reel_id, "360p_000.m4s")
    assert total == len(data) > CHUNK_BYTES
    assert messages == -(-total // CHUNK_BYTES)
    assert fetch_segment(origin, reel.reel_id, "360p_000.m4s")[2] == etag
    # Stills for moderation and thumbnails, beside the media; no temporary files remain.
    media_dirs = list((origin.media_root / "reels").glob("v1/*/*"))
    assert len(media_dirs) == 1
    assert (media_dirs[0] / "poster.jpg").stat().st_size > 0
    assert len(list(media_dirs[0].glob("keyframe_*.jpg"))) >= 3
    assert leftovers(origin.media_root) == []
    # The edges' GetReels keeps working for uploaded reels.
    briefs = origin.stub.GetReels(origin_pb2.GetReelsRequest(reel_ids=[reel.reel_id]), timeout=5)
    assert briefs.reels[0].state == origin_pb2.REEL_STATE_PUBLISHED


def test_portrait_odd_sized_variable_rate_clip_without_audio_keeps_its_orientation(
    start_origin: Callable[..., Origin], tmp_path: Path
) -> None:
    origin = start_origin()
    clip = make_clip(tmp_path / "portrait.mp4", 362, 642, 5, audio=False, variable_frame_rate=True)
    reel, _ = wait_for_state(origin, upload(origin, clip.read_bytes()).reel_id)
    assert reel.state == origin_pb2.REEL_STATE_PUBLISHED, reel
    keyframes = check_ladder(origin, reel, tmp_path, {"360p": (360, 638), "240p": (240, 426)})
    assert keyframes["360p"] == [0.0, 2.0, 4.0]
    variants = master_attributes(manifest(origin, reel.reel_id, "master.m3u8"))
    assert "mp4a" not in variants["360p.m3u8"]["CODECS"]
    assert variants["360p.m3u8"]["FRAME-RATE"] == "18.000"  # the source's average rate


def test_a_tall_clip_gets_every_rung_at_or_below_its_short_side(
    start_origin: Callable[..., Origin], tmp_path: Path
) -> None:
    origin = start_origin()
    clip = make_clip(tmp_path / "tall.mp4", 480, 854, 2.5, rate=24)
    reel, progress = wait_for_state(origin, upload(origin, clip.read_bytes()).reel_id)
    assert reel.state == origin_pb2.REEL_STATE_PUBLISHED, reel
    check_ladder(
        origin, reel, tmp_path, {"480p": (480, 854), "360p": (360, 640), "240p": (240, 428)}
    )
    assert all(0 <= p <= 100 for p in progress)


def leftovers(media_root: Path) -> list[Path]:
    """Files in the staging, source and work folders (none once nothing is in flight)."""
    return [
        path
        for folder in ("uploads", "sources", "work")
        for path in (media_root / folder).rglob("*")
    ]


def test_every_bad_upload_gets_its_reason_and_the_origin_stays_healthy(
    start_origin: Callable[..., Origin], tmp_path: Path
) -> None:
    origin = start_origin(max_duration_s="3", max_upload_bytes=str(3_000_000))
    good = make_clip(tmp_path / "good.mp4", 320, 240, 2).read_bytes()
    long = make_clip(tmp_path / "long.mp4", 320, 240, 4).read_bytes()
    wide = make_clip(tmp_path / "wide.mp4", 1600, 144, 1, audio=False).read_bytes()
    tiny = make_clip(tmp_path / "tiny.mp4", 64, 64, 1, audio=False).read_bytes()
    cases = {
        "empty": (b"", "empty"),
        "random bytes": (random.Random(4).randbytes(100_000), "not a video file"),
        "truncated mp4": (good[: len(good) // 2], "truncated"),
        "image": (make_image(tmp_path / "still.png").read_bytes(), "image"),
        "audio only": (make_audio(tmp_path / "sound.m4a").read_bytes(), "audio only"),
        "absurd aspect": (wide, "absurd dimensions 1600x144"),
        "too small": (tiny, "absurd dimensions 64x64"),
        "too long": (long, "too long"),
    }
    for case, (data, reason) in cases.items():
        with pytest.raises(grpc.RpcError) as error:
            upload(origin, data)
        assert error.value.code() == grpc.StatusCode.INVALID_ARGUMENT, case
        assert reason in (error.value.details() or ""), (case, error.value.details())
        assert "/" not in (error.value.details() or ""), "no server path in messages"
    with pytest.raises(grpc.RpcError) as error:
        origin.stub.Upload(upload_requests(b"x", total_bytes=3_000_001), timeout=10)
    assert error.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "too large" in (error.value.details() or "")
    with pytest.raises(grpc.RpcError) as error:
        origin.stub.Upload(iter([origin_pb2.UploadRequest(chunk=b"x")]), timeout=10)
    assert error.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "metadata" in (error.value.details() or "")

    assert leftovers(origin.media_root) == []
    health = health_pb2_grpc.HealthStub(origin.channel)
    assert health.Check(health_pb2.HealthCheckRequest(), timeout=5).status == (
        health_pb2.HealthCheckResponse.SERVING
    )
    reel, _ = wait_for_state(origin, upload(origin, good).reel_id)
    assert reel.state == origin_pb2.REEL_STATE_PUBLISHED


def test_an_interrupted_upload_resumes_at_the_bytes_received(
    start_origin: Callable[..., Origin], tmp_path: Path
) -> None:
    origin = start_origin()
    data = make_clip(tmp_path / "clip.mp4", 320, 240, 3).read_bytes()
    half = len(data) // 2
    first = origin.stub.Upload(upload_requests(data, stop=half), timeout=30)
    assert first.state == origin_pb2.REEL_STATE_UPLOADING
    assert first.bytes_received == half
    reel = origin.stub.GetReel(origin_pb2.GetReelRequest(reel_id=first.reel_id), timeout=5)
    assert reel.state == origin_pb2.REEL_STATE_UPLOADING

    # Metadata alone asks where to continue.
    status = origin.stub.Upload(upload_requests(data, upload_id=first.upload_id, stop=0))
    assert (status.reel_id, status.bytes_received) == (first.reel_id, half)
    # A chunk past the received bytes would leave a hole.
    with pytest.raises(grpc.RpcError) as error:
        origin.stub.Upload(
            upload_requests(data, upload_id=first.upload_id, start=half + 10), timeout=30
        )
    assert error.value.code() == grpc.StatusCode.FAILED_PRECONDITION
    assert f"resume at offset {half}" in (error.value.details() or "")
    # Resending from a bit before the resume point is harmless: overlap is skipped.
    done = origin.stub.Upload(
        upload_requests(data, upload_id=first.upload_id, start=half - 1000, chunk_bytes=50_000),
        timeout=30,
    )
    assert done.state == origin_pb2.REEL_STATE_PROCESSING
    assert done.bytes_received == len(data)
    reel, _ = wait_for_state(origin, first.reel_id)
    assert reel.state == origin_pb2.REEL_STATE_PUBLISHED, reel
    data_360, _, _, _ = fetch_segment(origin, first.reel_id, "240p_init.mp4")
    assert data_360
    # The finished upload can no longer be resumed.
    with pytest.raises(grpc.RpcError) as error:
        origin.stub.Upload(upload_requests(data, upload_id=first.upload_id, stop=0))
    assert error.value.code() == grpc.StatusCode.NOT_FOUND


def test_a_failed_transcode_marks_the_reel_failed_and_leaves_no_files(
    start_origin: Callable[..., Origin], tmp_path: Path
) -> None:
    origin = start_origin(transcode_timeout_s="0.3")
    data = make_clip(tmp_path / "clip.mp4", 640, 360, 6).read_bytes()
    reel, _ = wait_for_state(origin, upload(origin, data).reel_id)
    assert reel.state == origin_pb2.REEL_STATE_FAILED
    assert leftovers(origin.media_root) == []
    assert list((origin.media_root / "reels").rglob("*.m4s")) == []
    with pytest.raises(grpc.RpcError) as error:
        manifest(origin, reel.reel_id, "master.m3u8")
    assert error.value.code() == grpc.StatusCode.FAILED_PRECONDITION
    assert "time limit" in (error.value.details() or "")


def test_serving_answers_not_found_bad_names_and_unplayable_states(
    start_origin: Callable[..., Origin],
) -> None:
    origin = start_origin()
    origin.stub.ImportReels(
        origin_pb2.ImportReelsRequest(
            reels=[
                origin_pb2.Reel(reel_id=11, state=origin_pb2.REEL_STATE_REMOVED),
                origin_pb2.Reel(reel_id=12, state=origin_pb2.REEL_STATE_PROCESSING),
                origin_pb2.Reel(reel_id=13, state=origin_pb2.REEL_STATE_PUBLISHED),
            ]
        ),
        timeout=10,
    )

    def code_of(call: Callable[[], object]) -> tuple[grpc.StatusCode, str]:
        with pytest.raises(grpc.RpcError) as error:
            call()
        return error.value.code(), error.value.details() or ""

    code, details = code_of(lambda: manifest(origin, 11, "master.m3u8"))
    assert code == grpc.StatusCode.FAILED_PRECONDITION
    assert "removed" in details
    code, details = code_of(lambda: fetch_segment(origin, 11, "720p_000.m4s"))
    assert code == grpc.StatusCode.FAILED_PRECONDITION
    assert "removed" in details
    code, details = code_of(lambda: manifest(origin, 12, "master.m3u8"))
    assert code == grpc.StatusCode.FAILED_PRECONDITION
    assert "not playable yet" in details
    assert code_of(lambda: manifest(origin, 13, "master.m3u8"))[0] == grpc.StatusCode.NOT_FOUND
    assert code_of(lambda: manifest(origin, 999, "master.m3u8"))[0] == grpc.StatusCode.NOT_FOUND
    for bad in ["../master.m3u8", "/etc/passwd", "720p_000.m4s/../x", "master.m3u8\x00", ""]:
        assert code_of(lambda: manifest(origin, 13, bad))[0] == grpc.StatusCode.NOT_FOUND  # noqa: B023
        assert code_of(lambda: fetch_segment(origin, 13, bad))[0] == grpc.StatusCode.NOT_FOUND  # noqa: B023
