"""The origin's files on disk. Every method blocks: callers run them with `asyncio.to_thread`.

Layout under the media root:
- `uploads/<upload_id>.part`   bytes received so far (the resume point is its size)
- `sources/<reel_id>.src`      accepted uploads waiting for or in transcoding; deleted once
                               the reel is transcoded or has failed (a restart re-queues them)
- `work/<reel_id>-<random>/`   one transcode's output while ffmpeg runs; deleted on failure,
                               renamed into `reels/` on success (atomic: a media folder is
                               complete or absent)
- `reels/<ladder version>/<hash[:2]>/<hash>/`   published media, content-addressed by the
                               SHA-256 of the source: a re-upload of the same bytes reuses it
"""

from __future__ import annotations

import contextlib
import errno
import hashlib
import os
import re
import shutil
import tempfile
import time
from pathlib import Path

from origin.errors import ToolFailed
from origin.ladder import LADDER_VERSION
from origin.media_names import RENDITIONS_FILE

_UPLOAD_ID = re.compile(r"[0-9a-f]{32}")
_MEDIA_KEY = re.compile(r"v[0-9]+/[0-9a-f]{2}/[0-9a-f]{64}")
HASH_BLOCK_BYTES = 1024 * 1024


_OUT_OF_SPACE_ERRNOS = frozenset({errno.ENOSPC, errno.EDQUOT})
_OUT_OF_SPACE_TEXT = "No space left on device"


def is_out_of_space(exc: BaseException) -> bool:
    """Whether `exc` says the media folder's file system is full: ENOSPC/EDQUOT from our own
    writes, or ffmpeg failing with "No space left on device" on its outputs."""
    if isinstance(exc, OSError):
        return exc.errno in _OUT_OF_SPACE_ERRNOS
    if isinstance(exc, ToolFailed):
        return _OUT_OF_SPACE_TEXT in exc.stderr_tail or _OUT_OF_SPACE_TEXT in str(exc)
    return False


def is_upload_id(text: str) -> bool:
    return _UPLOAD_ID.fullmatch(text) is not None


def media_key_for(content_hash: str) -> str:
    return f"{LADDER_VERSION}/{content_hash[:2]}/{content_hash}"


def sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as file:
        while block := file.read(HASH_BLOCK_BYTES):
            digest.update(block)
    return digest.hexdigest()


class MediaStore:
    def __init__(self, root: Path) -> None:
        self.root = root
        self.uploads = root / "uploads"
        self.sources = root / "sources"
        self.work = root / "work"
        self.reels = root / "reels"

    def prepare(self) -> None:
        """Creates the folders and deletes every leftover transcode work folder (a crash
        mid-transcode leaves one; its source is re-queued from `sources/`)."""
        for folder in (self.uploads, self.sources, self.work, self.reels):
            folder.mkdir(parents=True, exist_ok=True)
        for leftover in self.work.iterdir():
            shutil.rmtree(leftover, ignore_errors=True)

    def free_bytes(self) -> int:
        """Bytes the media folder's file system still has for us."""
        return shutil.disk_usage(self.root).free

    # --- uploads
    def upload_path(self, upload_id: str) -> Path:
        if not is_upload_id(upload_id):
            raise ValueError(f"bad upload id {upload_id!r}")
        return self.uploads / f"{upload_id}.part"

    def upload_size(self, upload_id: str) -> int:
        try:
            return self.upload_path(upload_id).stat().st_size
        except FileNotFoundError:
            return 0

    def delete_upload(self, upload_id: str) -> None:
        self.upload_path(upload_id).unlink(missing_ok=True)

    def expire_uploads(self, ttl_s: float) -> list[str]:
        """Deletes staged uploads untouched for `ttl_s`; returns their upload ids."""
        cutoff = time.time() - ttl_s
        expired = []
        for part in self.uploads.glob("*.part"):
            with contextlib.suppress(FileNotFoundError):
                if part.stat().st_mtime < cutoff:
                    part.unlink()
                    expired.append(part.stem)
        return expired

    # --- sources
    def source_path(self, reel_id: int) -> Path:
        return self.sources / f"{reel_id}.src"

    def accept_upload(self, upload_id: str, reel_id: int) -> Path:
        """Moves a complete upload into `sources/` (same file system: a rename)."""
        target = self.source_path(reel_id)
        self.upload_path(upload_id).replace(target)
        return target

    def queued_sources(self) -> list[tuple[int, Path]]:
        found = []
        for path in sorted(self.sources.glob("*.src")):
            if path.stem.isdigit():
                found.append((int(path.stem), path))
        return found

    # --- transcoding
    def new_work_dir(self, reel_id: int) -> Path:
        return Path(tempfile.mkdtemp(prefix=f"{reel_id}-", dir=self.work))

    def media_dir(self, media_key: str) -> Path:
        if _MEDIA_KEY.fullmatch(media_key) is None:
            raise ValueError(f"bad media key {media_key!r}")
        return self.reels / media_key

    def has_media(self, media_key: str) -> bool:
        return (self.media_dir(media_key) / RENDITIONS_FILE).is_file()

    def publish(self, work_dir: Path, media_key: str) -> Path:
        """Moves a finished work folder to its content-addressed place (atomic rename).
        When the same content was published meanwhile, the existing folder wins."""
        target = self.media_dir(media_key)
        target.parent.mkdir(parents=True, exist_ok=True)
        try:
            os.rename(work_dir, target)
        except OSError:
            if not self.has_media(media_key):
                raise
            shutil.rmtree(work_dir, ignore_errors=True)
        return target

    # --- serving
    def file_path(self, media_key: str, name: str) -> Path:
        """Path of a file of a media folder; `name` must already be whitelisted."""
        return self.media_dir(media_key) / name
