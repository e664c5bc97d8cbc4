"""The bounded transcoding pool: a queue of accepted uploads and a fixed number of workers,
each running one ladder ffmpeg process at a time, and the rest of a reel's lifecycle:

PROCESSING (percent from ffmpeg's progress, written at most every
`progress_write_interval_s`) -> ladder published on disk -> moderation hook ->
PUBLISHED | IN_REVIEW | REMOVED; FAILED when the transcode fails. A transcode that runs
out of disk space is not a failure of the reel: the worker keeps the source and tries again
every `storage_retry_s` until space is freed.

A source file stays in `sources/` until its reel reached a final state, so a crash or a
shutdown mid-transcode loses nothing: the next start re-queues it (`recover`).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import shutil
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TypeVar

from origin.config import OriginConfig
from origin.errors import OriginBusy, ToolFailed, UnplayableMedia
from origin.ladder import plan_ladder
from origin.ladder_transcode import read_renditions, stills_of, transcode_ladder
from origin.media_probe import ProbeLimits, SourceMedia, probe_file
from origin.media_store import MediaStore, is_out_of_space, media_key_for, sha256_file
from origin.moderation_hook import ModerationHook, ModerationSubject, Verdict
from origin.reel_catalog import ReelCatalog
from origin.transcode_command import EncoderSettings
from protos import origin_pb2
from reelstream.cassandra_client import StoreUnavailable

logger = logging.getLogger(__name__)

T = TypeVar("T")

STORE_ATTEMPTS = 5
STATE_OF_VERDICT = {
    Verdict.PUBLISH: origin_pb2.REEL_STATE_PUBLISHED,
    Verdict.HOLD_FOR_REVIEW: origin_pb2.REEL_STATE_IN_REVIEW,
    Verdict.REMOVE: origin_pb2.REEL_STATE_REMOVED,
}


@dataclass(frozen=True)
class TranscodeJob:
    reel_id: int
    source: Path
    media: SourceMedia
    content_hash: str


def probe_limits(config: OriginConfig) -> ProbeLimits:
    return ProbeLimits(
        max_duration_s=config.max_duration_s,
        min_duration_s=config.min_duration_s,
        min_short_side_px=config.min_short_side_px,
        max_long_side_px=config.max_long_side_px,
        max_aspect_ratio=config.max_aspect_ratio,
        timeout_s=config.ffprobe_timeout_s,
        threads=config.ffmpeg_threads,
    )


async def _retrying(action: Callable[[], Awaitable[T]]) -> T:
    """Retries an idempotent catalog write through a short Cassandra outage."""
    delay_s = 0.5
    for attempt in range(1, STORE_ATTEMPTS + 1):
        try:
            return await action()
        except StoreUnavailable:
            if attempt == STORE_ATTEMPTS:
                raise
            await asyncio.sleep(delay_s)
            delay_s = min(delay_s * 2, 5.0)
    raise AssertionError("unreachable")


class TranscodePool:
    def __init__(
        self,
        config: OriginConfig,
        store: MediaStore,
        catalog: ReelCatalog,
        moderation: ModerationHook,
    ) -> None:
        self._config = config
        self._store = store
        self._catalog = catalog
        self._moderation = moderation
        self._queue: asyncio.Queue[TranscodeJob] = asyncio.Queue(config.transcode_queue_size)
        self._reserved = 0
        self._encoder = EncoderSettings(config.x264_preset, config.ffmpeg_threads)

    # --- admission: a slot is reserved before the (slow) probe, so a full queue is refused
    # before the client waits for it, and every reserved job finds room.
    def reserve(self) -> None:
        """Raises:
        OriginBusy: the queue has no room."""
        if self._queue.qsize() + self._reserved >= self._config.transcode_queue_size:
            raise OriginBusy(
                f"the transcode queue is full ({self._config.transcode_queue_size} reels);"
                " the upload is kept: resume it later to finish"
            )
        self._reserved += 1

    def release(self) -> None:
        self._reserved -= 1

    def submit(self, job: TranscodeJob) -> None:
        """Queues a job whose slot was reserved."""
        self._reserved -= 1
        self._queue.put_nowait(job)

    @property
    def queued(self) -> int:
        return self._queue.qsize()

    # --- workers
    async def run(self) -> None:
        """Runs the workers until cancelled."""
        async with asyncio.TaskGroup() as group:
            for index in range(self._config.transcode_workers):
                group.create_task(self._worker(), name=f"transcode-worker-{index}")

    async def recover(self) -> None:
        """Re-queues the sources a previous process accepted but did not finish."""
        limits = probe_limits(self._config)
        for reel_id, source in await asyncio.to_thread(self._store.queued_sources):
            try:
                size = (await asyncio.to_thread(source.stat)).st_size
                media = await probe_file(source, size, limits)
                content_hash = await asyncio.to_thread(sha256_file, source)
            except (OSError, UnplayableMedia) as exc:
                logger.warning(
                    "dropping unreadable queued source",
                    extra={"fields": {"reel_id": reel_id, "error": exc}},
                )
                await asyncio.to_thread(source.unlink, missing_ok=True)
                continue
            await self._queue.put(TranscodeJob(reel_id, source, media, content_hash))
            logger.info("re-queued source", extra={"fields": {"reel_id": reel_id}})

    async def _worker(self) -> None:
        while True:
            job = await self._queue.get()
            try:
                while True:
                    if await self._process(job):
                        break
                    await asyncio.sleep(self._config.storage_retry_s)
            finally:
                self._queue.task_done()

    async def _process(self, job: TranscodeJob) -> bool:
        """Takes a reel from its source to a final state; False (source kept, reel still
        PROCESSING) when the media folder ran out of space, for the caller to retry."""
        started = time.monotonic()
        try:
            media_key = media_key_for(job.content_hash)
            if await asyncio.to_thread(self._store.has_media, media_key):
                media_dir = self._store.media_dir(media_key)
                renditions = await asyncio.to_thread(read_renditions, media_dir)
            else:
                renditions = await self._transcode(job, media_key)
                media_dir = self._store.media_dir(media_key)
            await _retrying(lambda: self._catalog.set_media(job.reel_id, media_key, renditions))
            decision = await self._moderation.review(
                await self._subject(job, media_dir, await asyncio.to_thread(stills_of, media_dir))
            )
            state = STATE_OF_VERDICT[decision.verdict]
            await _retrying(lambda: self._catalog.set_state(job.reel_id, state, decision.reason))
        except asyncio.CancelledError:
            raise  # shutdown: the source stays in sources/ and is re-queued at the next start
        except Exception as exc:
            if is_out_of_space(exc):
                logger.warning(
                    "media storage full: transcode retried later, source kept",
                    extra={
                        "fields": {
                            "reel_id": job.reel_id,
                            "retry_in_s": self._config.storage_retry_s,
                        }
                    },
                )
                return False
            reason = f"transcoding failed: {exc}"
            if isinstance(exc, ToolFailed) and exc.stderr_tail:
                reason += f" ({exc.stderr_tail.strip().splitlines()[-1][:200]})"
            logger.exception(
                "transcode failed", extra={"fields": {"reel_id": job.reel_id, "error": exc}}
            )
            with contextlib.suppress(StoreUnavailable):
                await _retrying(
                    lambda: self._catalog.set_state(
                        job.reel_id, origin_pb2.REEL_STATE_FAILED, reason
                    )
                )
        await asyncio.to_thread(job.source.unlink, missing_ok=True)
        logger.info(
            "reel processed",
            extra={
                "fields": {"reel_id": job.reel_id, "seconds": round(time.monotonic() - started, 2)}
            },
        )
        return True

    async def _transcode(self, job: TranscodeJob, media_key: str) -> list[origin_pb2.Rendition]:
        plan = plan_ladder(job.media.width, job.media.height, job.media.frame_rate)
        work_dir = await asyncio.to_thread(self._store.new_work_dir, job.reel_id)
        latest = [0]

        def on_percent(percent: int) -> None:
            latest[0] = percent

        async def write_progress() -> None:
            written = -1
            while True:
                await asyncio.sleep(self._config.progress_write_interval_s)
                if latest[0] != written:
                    written = latest[0]
                    with contextlib.suppress(StoreUnavailable):
                        await self._catalog.set_progress(job.reel_id, written)

        writer = asyncio.create_task(write_progress())
        try:
            try:
                renditions = await transcode_ladder(
                    job.source,
                    work_dir,
                    job.media,
                    plan,
                    self._encoder,
                    self._config.transcode_timeout_s,
                    on_percent,
                )
            finally:
                writer.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await writer
            await asyncio.to_thread(self._store.publish, work_dir, media_key)
        except BaseException:
            # No partial output survives a failure or a cancel (shielded: a short rmtree).
            await asyncio.shield(asyncio.to_thread(shutil.rmtree, work_dir, True))
            raise
        return renditions

    async def _subject(
        self, job: TranscodeJob, media_dir: Path, stills: tuple[Path, ...]
    ) -> ModerationSubject:
        reel = await _retrying(lambda: self._catalog.get(job.reel_id))
        return ModerationSubject(
            reel_id=job.reel_id,
            creator_id=reel.creator_id if reel else 0,
            caption=reel.caption if reel else "",
            hashtags=tuple(reel.hashtags) if reel else (),
            content_hash=job.content_hash,
            duration_s=job.media.duration_s,
            media_dir=media_dir,
            stills=stills,
            source=job.source,
        )
