"""Receiving an upload stream: metadata first, then chunks at offsets; resumable by id.

Protocol (all in `UploadRequest`/`UploadResponse`, no extra RPC):
- A new upload sends metadata without `upload_id` (and with `total_bytes`), then chunks. The
  response names the reel and the upload id.
- To resume, a client sends metadata with the `upload_id` only (no chunks): the response
  says `bytes_received`. It then streams metadata with the id again and chunks from that
  offset. A chunk overlapping bytes already received is trimmed (retries are harmless); a
  chunk beyond the received bytes would leave a hole and is refused (FAILED_PRECONDITION).
- When `bytes_received` reaches `total_bytes` the file is probed, before anything else is
  done with it. A rejected file is deleted and its reel marks FAILED with the reason
  (INVALID_ARGUMENT). An accepted file is hashed, moved to `sources/` and queued for
  transcoding (state PROCESSING).

The resume point is the size of the staged file, so it survives a restart of the origin.
One stream at a time may write an upload; uploads open at once are bounded.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import secrets
import time
import uuid
from collections.abc import AsyncIterator
from typing import BinaryIO

from origin.config import OriginConfig
from origin.errors import (
    MediaNotFound,
    OriginBusy,
    StorageFull,
    UnplayableMedia,
    UploadConflict,
    UploadRejected,
)
from origin.media_probe import probe_file
from origin.media_store import MediaStore, is_out_of_space, is_upload_id, sha256_file
from origin.reel_catalog import ReelCatalog, UploadRecord
from origin.transcode_pool import TranscodeJob, TranscodePool, probe_limits
from protos import origin_pb2

logger = logging.getLogger(__name__)

MAX_CAPTION_CHARS = 2_200
MAX_HASHTAGS = 30
MAX_HASHTAG_CHARS = 100


def _check_metadata(metadata: origin_pb2.UploadMetadata, max_bytes: int) -> None:
    if len(metadata.caption) > MAX_CAPTION_CHARS:
        raise UploadRejected(f"caption longer than {MAX_CAPTION_CHARS} characters")
    if len(metadata.hashtags) > MAX_HASHTAGS or any(
        len(tag) > MAX_HASHTAG_CHARS for tag in metadata.hashtags
    ):
        raise UploadRejected(
            f"at most {MAX_HASHTAGS} hashtags of at most {MAX_HASHTAG_CHARS} characters"
        )
    if metadata.total_bytes == 0:
        raise UploadRejected("the file is empty (total_bytes is 0)")
    if metadata.total_bytes > max_bytes:
        raise UploadRejected(
            f"the file is too large: {metadata.total_bytes} bytes (at most {max_bytes})"
        )


class UploadIntake:
    def __init__(
        self,
        config: OriginConfig,
        store: MediaStore,
        catalog: ReelCatalog,
        pool: TranscodePool,
    ) -> None:
        self._config = config
        self._store = store
        self._catalog = catalog
        self._pool = pool
        self._active: set[str] = set()
        self._open_streams = 0

    async def receive(
        self, requests: AsyncIterator[origin_pb2.UploadRequest]
    ) -> origin_pb2.UploadResponse:
        """Consumes one Upload stream.

        Raises:
            UploadRejected: bad metadata, a limit, or an unplayable file (with the reason).
            UploadConflict: the upload is being sent by another stream, or a chunk leaves a gap.
            OriginBusy: too many uploads at once, or the transcode queue is full.
            StorageFull: the media folder has no room; nothing of the upload is kept.
            MediaNotFound: an unknown upload id.
            StoreUnavailable: Cassandra did not answer.
        """
        first = await anext(requests, None)
        if first is None or first.WhichOneof("part") != "metadata":
            raise UploadRejected("the first message of an upload must carry its metadata")
        if self._open_streams >= self._config.max_concurrent_uploads:
            raise OriginBusy(f"{self._open_streams} uploads in progress; retry later")
        self._open_streams += 1
        try:
            record = await self._open(first.metadata)
            if record.upload_id in self._active:
                raise UploadConflict(f"upload {record.upload_id} is being sent by another stream")
            self._active.add(record.upload_id)
            try:
                return await self._receive_chunks(record, requests)
            finally:
                self._active.discard(record.upload_id)
        finally:
            self._open_streams -= 1

    async def _open(self, metadata: origin_pb2.UploadMetadata) -> UploadRecord:
        if metadata.upload_id:
            if not is_upload_id(metadata.upload_id):
                raise UploadRejected(f"malformed upload_id {metadata.upload_id[:64]!r}")
            record = await self._catalog.find_upload(metadata.upload_id)
            if record is None:
                raise MediaNotFound(
                    f"no upload {metadata.upload_id} (finished, expired or never started)"
                )
            if metadata.total_bytes and metadata.total_bytes != record.total_bytes:
                raise UploadRejected(
                    f"total_bytes {metadata.total_bytes} differs from the upload's"
                    f" {record.total_bytes}"
                )
            return record
        _check_metadata(metadata, self._config.max_upload_bytes)
        free = await asyncio.to_thread(self._store.free_bytes)
        if free < metadata.total_bytes + self._config.min_free_bytes:
            # Refused before any row or file exists: nothing to clean up.
            raise StorageFull(
                f"the origin's media storage is full: {free} bytes free, this upload needs"
                f" {metadata.total_bytes} plus a reserve of {self._config.min_free_bytes};"
                " retry later"
            )
        record = UploadRecord(
            upload_id=uuid.uuid4().hex,
            reel_id=secrets.randbits(63) or 1,
            total_bytes=metadata.total_bytes,
        )
        reel = origin_pb2.Reel(
            reel_id=record.reel_id,
            creator_id=metadata.creator_id,
            caption=metadata.caption,
            hashtags=list(metadata.hashtags),
            state=origin_pb2.REEL_STATE_UPLOADING,
            created_ms=int(time.time() * 1000),
        )
        await self._catalog.create_upload(reel, record)
        logger.info(
            "upload started",
            extra={"fields": {"reel_id": record.reel_id, "upload_id": record.upload_id}},
        )
        return record

    async def _receive_chunks(
        self, record: UploadRecord, requests: AsyncIterator[origin_pb2.UploadRequest]
    ) -> origin_pb2.UploadResponse:
        try:
            received = await self._write_chunks(record, requests)
        except OSError as exc:
            if not is_out_of_space(exc):
                raise
            await self._discard(record, "the origin's media storage filled up")
            raise StorageFull(
                f"the origin's media storage filled up while receiving upload"
                f" {record.upload_id}; the partial file was deleted: upload again later"
            ) from exc
        if received < record.total_bytes:
            return origin_pb2.UploadResponse(
                reel_id=record.reel_id,
                upload_id=record.upload_id,
                bytes_received=received,
                state=origin_pb2.REEL_STATE_UPLOADING,
            )
        await self._accept(record)
        return origin_pb2.UploadResponse(
            reel_id=record.reel_id,
            upload_id=record.upload_id,
            bytes_received=received,
            state=origin_pb2.REEL_STATE_PROCESSING,
        )

    async def _discard(self, record: UploadRecord, reason: str) -> None:
        """Deletes a staged upload and closes its reel as FAILED: a disk that filled up
        mid-upload leaves neither a partial file nor a reel waiting for bytes."""
        await asyncio.to_thread(self._store.delete_upload, record.upload_id)
        with contextlib.suppress(Exception):
            await self._catalog.set_state(record.reel_id, origin_pb2.REEL_STATE_FAILED, reason)
            await self._catalog.forget_upload(record.upload_id)
        logger.warning(
            "upload discarded", extra={"fields": {"reel_id": record.reel_id, "reason": reason}}
        )

    async def _write_chunks(
        self, record: UploadRecord, requests: AsyncIterator[origin_pb2.UploadRequest]
    ) -> int:
        """Appends the stream's chunks to the staged file; returns the bytes received."""
        path = self._store.upload_path(record.upload_id)
        file: BinaryIO = await asyncio.to_thread(open, path, "ab")
        try:
            received = await asyncio.to_thread(file.tell)
            async for request in requests:
                if request.WhichOneof("part") != "chunk":
                    raise UploadRejected("only the first message may carry metadata")
                chunk, offset = request.chunk, request.offset
                if offset > received:
                    raise UploadConflict(
                        f"chunk at offset {offset} leaves a gap: {received} bytes received,"
                        f" resume at offset {received}"
                    )
                if offset + len(chunk) > record.total_bytes:
                    raise UploadRejected(
                        f"more bytes than the declared total_bytes {record.total_bytes}"
                    )
                fresh = chunk[received - offset :]  # retried bytes are skipped
                if fresh:
                    await asyncio.to_thread(file.write, fresh)
                    received += len(fresh)
            await asyncio.to_thread(file.flush)
        finally:
            # Shielded: a cancelled stream still closes its file (bytes kept for a resume).
            await asyncio.shield(asyncio.to_thread(file.close))
        return received

    async def _accept(self, record: UploadRecord) -> None:
        """Probes the complete file and queues it, or deletes it with its reel FAILED."""
        self._pool.reserve()  # OriginBusy: the staged file stays, the client resumes later
        queued = False
        try:
            path = self._store.upload_path(record.upload_id)
            try:
                media = await probe_file(path, record.total_bytes, probe_limits(self._config))
            except UnplayableMedia as exc:
                await asyncio.to_thread(self._store.delete_upload, record.upload_id)
                with contextlib.suppress(Exception):
                    await self._catalog.set_state(
                        record.reel_id, origin_pb2.REEL_STATE_FAILED, f"rejected: {exc}"
                    )
                    await self._catalog.forget_upload(record.upload_id)
                logger.info(
                    "upload rejected",
                    extra={"fields": {"reel_id": record.reel_id, "reason": str(exc)}},
                )
                raise
            content_hash = await asyncio.to_thread(sha256_file, path)
            # Catalog first: if Cassandra fails here, the staged file is untouched and a
            # resume of the upload retries the whole step.
            await self._catalog.mark_accepted(
                record.reel_id, round(media.duration_s * 1000), content_hash
            )
            source = await asyncio.to_thread(
                self._store.accept_upload, record.upload_id, record.reel_id
            )
            self._pool.submit(TranscodeJob(record.reel_id, source, media, content_hash))
            queued = True
            with contextlib.suppress(Exception):  # a stale row only answers NOT_FOUND later
                await self._catalog.forget_upload(record.upload_id)
        finally:
            if not queued:
                self._pool.release()
