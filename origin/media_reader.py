"""Serving a reel's playlists and segments to edges.

Checks, in order: the name is on the whitelist (`media_names`), the reel exists, its state
allows serving (PUBLISHED), the file exists. Files are read off the event loop. A segment's
ETag is derived from the content-addressed folder, the name and the size: the bytes behind
a (folder, name) never change, so the tag is stable across origins and restarts without
hashing the file.
"""

from __future__ import annotations

import asyncio
import hashlib
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

from origin.errors import MediaNotFound, NotPlayable
from origin.media_names import is_manifest_name, is_segment_name
from origin.media_store import MediaStore
from origin.reel_catalog import ReelCatalog
from protos import origin_pb2

_WAITING = {
    origin_pb2.REEL_STATE_UPLOADING: "is still uploading",
    origin_pb2.REEL_STATE_PROCESSING: "is still processing",
    origin_pb2.REEL_STATE_IN_REVIEW: "is in review",
}


@dataclass(frozen=True)
class SegmentHeader:
    total_bytes: int
    etag: str


def etag_of(media_key: str, name: str, size: int) -> str:
    return hashlib.blake2b(f"{media_key}/{name}:{size}".encode(), digest_size=12).hexdigest()


class MediaReader:
    def __init__(self, catalog: ReelCatalog, store: MediaStore, chunk_bytes: int) -> None:
        self._catalog = catalog
        self._store = store
        self._chunk_bytes = chunk_bytes

    async def _media_key(self, reel_id: int) -> str:
        info = await self._catalog.serving_info(reel_id)
        if info is None:
            raise MediaNotFound(f"no reel {reel_id}")
        if info.state == origin_pb2.REEL_STATE_REMOVED:
            raise NotPlayable(f"reel {reel_id} was removed")
        if info.state in _WAITING:
            raise NotPlayable(f"reel {reel_id} is not playable yet: it {_WAITING[info.state]}")
        if info.state == origin_pb2.REEL_STATE_FAILED:
            raise NotPlayable(f"reel {reel_id} is not playable: {info.state_reason or 'failed'}")
        if not info.media_key:
            raise MediaNotFound(f"reel {reel_id} has no media")
        return info.media_key

    async def manifest(self, reel_id: int, name: str) -> bytes:
        """The bytes of `master.m3u8` or a rendition playlist.

        Raises:
            MediaNotFound: the name is not a playlist name, or no such reel or file.
            NotPlayable: the reel is not published (removed, processing, failed, in review).
        """
        if not is_manifest_name(name):
            raise MediaNotFound(f"{name[:64]!r} is not a playlist name")
        path = self._store.file_path(await self._media_key(reel_id), name)
        try:
            return await asyncio.to_thread(path.read_bytes)
        except FileNotFoundError as exc:
            raise MediaNotFound(f"reel {reel_id} has no {name}") from exc

    async def segment(self, reel_id: int, name: str) -> tuple[SegmentHeader, AsyncIterator[bytes]]:
        """The size and ETag of a segment and an iterator over its bytes in chunks.

        Raises:
            MediaNotFound: the name is not a segment name, or no such reel or file.
            NotPlayable: the reel is not published.
        """
        if not is_segment_name(name):
            raise MediaNotFound(f"{name[:64]!r} is not a segment name")
        media_key = await self._media_key(reel_id)
        path = self._store.file_path(media_key, name)
        try:
            size = (await asyncio.to_thread(path.stat)).st_size
        except FileNotFoundError as exc:
            raise MediaNotFound(f"reel {reel_id} has no {name}") from exc
        # Files of a published folder never change, so opening it later reads these bytes.
        return SegmentHeader(size, etag_of(media_key, name, size)), self._chunks(path)

    async def _chunks(self, path: Path) -> AsyncIterator[bytes]:
        file: BinaryIO = await asyncio.to_thread(open, path, "rb")
        try:
            while chunk := await asyncio.to_thread(file.read, self._chunk_bytes):
                yield chunk
        finally:
            await asyncio.shield(asyncio.to_thread(file.close))
