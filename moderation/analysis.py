"""Automatic analysis of one upload: nudity on its stills, text of its caption and hashtags,
vPDQ/PDQ hashes matched against the enabled banks; the policy turns the signals into a
verdict.

Models and hashing run in a bounded thread pool (`analysis_workers` threads), never on the
event loop; at most `max_pending_analyses` reels are admitted at once (AnalysisBusy beyond).
Within one reel the three checks run concurrently (the ffmpeg normalising pass is a
subprocess, NudeNet and vPDQ release the GIL in native code).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import TypeVar

from moderation.errors import AnalysisBusy
from moderation.hash_banks import BankMatch, HashBanks
from moderation.hash_index import FrameHash
from moderation.media_hashing import border_box, normalise_video, pdq_hash, scratch_dir, vpdq_hashes
from moderation.nudity_screen import NudityScreen
from moderation.policy import PolicyDecision, Thresholds, decide
from moderation.signals import HASH_MATCH_PREFIX, Signal
from moderation.text_screen import TextScreen

T = TypeVar("T")


@dataclass(frozen=True)
class Upload:
    reel_id: int
    caption: str
    hashtags: tuple[str, ...]
    stills: tuple[Path, ...]
    video: Path | None
    """The source (or a rendition) to hash; None: stills only."""


@dataclass(frozen=True)
class Analysis:
    decision: PolicyDecision
    signals: tuple[Signal, ...]
    hashes: tuple[FrameHash, ...]
    seconds: float


def hash_signals(matches: list[BankMatch]) -> list[Signal]:
    best: dict[str, BankMatch] = {}
    for match in matches:
        if match.bank not in best or match.matched_fraction > best[match.bank].matched_fraction:
            best[match.bank] = match
    return [
        Signal(
            HASH_MATCH_PREFIX + bank,
            m.matched_fraction,
            f"matches {m.content_id}: {m.matched_fraction:.0%} of frames,"
            f" distance {m.min_distance}",
        )
        for bank, m in best.items()
    ]


class Analyzer:
    def __init__(
        self,
        nudity: NudityScreen,
        text: TextScreen,
        banks: HashBanks,
        thresholds: Thresholds,
        workers: int,
        max_pending: int,
        timeout_s: float,
        ffmpeg_threads: int,
    ) -> None:
        self._nudity = nudity
        self._text = text
        self._banks = banks
        self._thresholds = thresholds
        self._pool = ThreadPoolExecutor(workers, thread_name_prefix="analysis")
        self._admitted = 0
        self._max_pending = max_pending
        self._timeout_s = timeout_s
        self._ffmpeg_threads = ffmpeg_threads

    async def _in_pool(self, work: Callable[[], T]) -> T:
        return await asyncio.get_running_loop().run_in_executor(self._pool, work)

    async def warm_up(self) -> None:
        await self._in_pool(self._text.warm_up)

    async def analyze(self, upload: Upload) -> Analysis:
        """Raises:
        AnalysisBusy: `max_pending_analyses` reels are being analysed already.
        TimeoutError: the analysis took longer than `analysis_timeout_s`."""
        if self._admitted >= self._max_pending:
            raise AnalysisBusy(f"{self._admitted} analyses pending; retry later")
        self._admitted += 1
        started = time.monotonic()
        try:
            async with asyncio.timeout(self._timeout_s):
                nudity, text, hashes = await asyncio.gather(
                    self._in_pool(lambda: self._nudity.screen(upload.stills)),
                    self._in_pool(lambda: self._text.screen(upload.caption, upload.hashtags)),
                    self.hashes_of(upload),
                )
            matches = await self._in_pool(lambda: self._banks.lookup(hashes))
        finally:
            self._admitted -= 1
        signals = (nudity, *text, *hash_signals(matches))
        return Analysis(
            decide(signals, self._thresholds), signals, tuple(hashes), time.monotonic() - started
        )

    async def hashes_of(self, upload: Upload) -> list[FrameHash]:
        box = await self._in_pool(lambda: border_box(upload.stills))
        hashes: list[FrameHash] = []
        if upload.video is not None:
            with scratch_dir() as scratch:
                normalised = await normalise_video(
                    upload.video, box, Path(scratch), self._timeout_s, self._ffmpeg_threads
                )
                hashes += await self._in_pool(lambda: vpdq_hashes(normalised))
        if upload.stills:
            poster = await self._in_pool(lambda: pdq_hash(upload.stills[0], box))
            if poster is not None:
                hashes.append(poster)
        return hashes

    def close(self) -> None:
        self._pool.shutdown(wait=False, cancel_futures=True)
