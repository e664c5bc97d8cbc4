"""Disk full on the origin's media folder: a small tmpfs mounted as the folder, filled by a
ballast file. Uploads that cannot fit are refused with RESOURCE_EXHAUSTED and a reason, a
disk that fills mid-upload leaves no partial file, a transcode that runs out of space keeps
its (acknowledged) source and finishes once space is freed, and existing reels keep being
served throughout."""

from __future__ import annotations

import errno
import shutil
import subprocess
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import grpc
import pytest

from protos import origin_pb2
from tests.integration import test_origin_video
from tests.integration.conftest import ServiceProcess
from tests.integration.test_origin_video import (
    Origin,
    fetch_segment,
    leftovers,
    upload,
    upload_requests,
    wait_for_state,
)
from tests.integration.video_clips import make_clip

pytestmark = [pytest.mark.integration, pytest.mark.timeout(180)]

TMPFS_BYTES = 16 * 1024 * 1024
RESERVE_BYTES = 16 * 1024
FILL_BLOCK = b"\0" * (1024 * 1024)

start_origin = test_origin_video.start_origin  # the origin-process fixture, shared


@pytest.fixture
def media_tmpfs(tmp_path: Path) -> Iterator[Path]:
    """A 16 MiB tmpfs at the origin's media folder, unmounted afterwards."""
    media_root = tmp_path / "media"
    media_root.mkdir()
    subprocess.run(
        ["mount", "-t", "tmpfs", "-o", f"size={TMPFS_BYTES}", "tmpfs", str(media_root)],
        check=True,
        capture_output=True,
        timeout=30,
    )
    try:
        yield media_root
    finally:
        # Lazy: the origin may still hold a file open when the fixture unwinds.
        subprocess.run(["umount", "-l", str(media_root)], check=True, timeout=30)


def fill_leaving(media_root: Path, free_bytes: int) -> Path:
    """Grows a ballast file until at most `free_bytes` remain (0: until ENOSPC)."""
    ballast = media_root / "ballast"
    with ballast.open("ab") as file:
        while (room := shutil.disk_usage(media_root).free - free_bytes) > 0:
            try:
                file.write(FILL_BLOCK[: min(room, len(FILL_BLOCK))])
                file.flush()
            except OSError as exc:
                if exc.errno != errno.ENOSPC:
                    raise
                break
    return ballast


def published_segment(origin: Origin, reel_id: int) -> tuple[str, bytes]:
    reel = origin.stub.GetReel(origin_pb2.GetReelRequest(reel_id=reel_id), timeout=5)
    name = f"{reel.renditions[0].name}_000.m4s"
    return name, fetch_segment(origin, reel_id, name)[0]


def wait_logged(process: ServiceProcess, text: str, timeout_s: float = 60.0) -> None:
    deadline = time.monotonic() + timeout_s
    while text not in process.log_path.read_text(errors="replace"):
        assert time.monotonic() < deadline, f"{text!r} never logged:\n{process.log_tail()}"
        time.sleep(0.2)


def test_a_full_media_disk_refuses_uploads_cleanly_and_loses_no_accepted_one(
    start_origin: Callable[..., Origin], media_tmpfs: Path, tmp_path: Path
) -> None:
    origin = start_origin(min_free_bytes=str(RESERVE_BYTES), storage_retry_s="0.5")
    assert origin.media_root == media_tmpfs
    # Distinct clips (different durations), so no upload reuses another's published media.
    clips = [
        make_clip(tmp_path / f"clip{i}.mp4", 640, 360, 1.5 + 0.25 * i).read_bytes()
        for i in range(4)
    ]
    first = upload(origin, clips[0])
    assert wait_for_state(origin, first.reel_id)[0].state == origin_pb2.REEL_STATE_PUBLISHED
    segment_name, segment = published_segment(origin, first.reel_id)
    ladder_bytes = sum(p.stat().st_size for p in (media_tmpfs / "reels").rglob("*.m4s"))
    assert ladder_bytes > 4 * RESERVE_BYTES, "a ladder must not fit in the reserve (step 3)"

    # 1. Not enough room for the upload plus the reserve: refused before anything is written.
    ballast = fill_leaving(media_tmpfs, len(clips[1]) + RESERVE_BYTES - 4096)
    with pytest.raises(grpc.RpcError) as refused:
        upload(origin, clips[1])
    assert refused.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
    assert "media storage is full" in (refused.value.details() or "")
    assert leftovers(media_tmpfs) == []
    assert fetch_segment(origin, first.reel_id, segment_name)[0] == segment

    # 2. The disk fills up while the upload streams (admitted, then ENOSPC on write): the
    # partial file is deleted and the reel is closed as FAILED, not left waiting for bytes.
    ballast.unlink()

    def requests_filling_the_disk() -> Iterator[origin_pb2.UploadRequest]:
        stream = upload_requests(clips[1], chunk_bytes=16 * 1024)
        yield next(stream)  # metadata: admitted while the disk has room
        yield next(stream)
        fill_leaving(media_tmpfs, 0)
        yield from stream

    with pytest.raises(grpc.RpcError) as filled:
        origin.stub.Upload(requests_filling_the_disk(), timeout=60)
    assert filled.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
    assert "filled up" in (filled.value.details() or "")
    assert leftovers(media_tmpfs) == []
    assert fetch_segment(origin, first.reel_id, segment_name)[0] == segment

    # 3. Room for the upload but not for its ladder: the upload is acknowledged (PROCESSING);
    # the transcode runs out of space, keeps the source and waits; freeing space finishes it.
    ballast.unlink()
    fill_leaving(media_tmpfs, len(clips[2]) + RESERVE_BYTES + 8192)  # < ladder_bytes
    accepted = upload(origin, clips[2])
    assert accepted.state == origin_pb2.REEL_STATE_PROCESSING
    wait_logged(origin.process, "media storage full: transcode retried later")
    reel = origin.stub.GetReel(origin_pb2.GetReelRequest(reel_id=accepted.reel_id), timeout=5)
    assert reel.state == origin_pb2.REEL_STATE_PROCESSING
    assert [p.parent.name for p in leftovers(media_tmpfs)] == ["sources"]  # the source only
    assert fetch_segment(origin, first.reel_id, segment_name)[0] == segment
    ballast.unlink()
    assert wait_for_state(origin, accepted.reel_id)[0].state == origin_pb2.REEL_STATE_PUBLISHED
    published_segment(origin, accepted.reel_id)

    # 4. Space freed: uploads are accepted again and nothing is left behind.
    again = upload(origin, clips[3])
    assert wait_for_state(origin, again.reel_id)[0].state == origin_pb2.REEL_STATE_PUBLISHED
    assert leftovers(media_tmpfs) == []
