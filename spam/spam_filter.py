"""The spam filter's running state: buffer -> history -> judge rounds -> verdicts ->
corrections through the counter shards, plus the blocklist and appeals.

Each round (spam.judge_rounds) gives the events that settled their final model verdict
and runs lockstep clustering when due; what it flags becomes one verdict. The judgement
(features, model, lockstep) is CPU work and runs in a worker thread; only the
judge loop touches the history, so nothing else mutates it meanwhile. Every verdict and
reversal is saved in the verdict store before its correction is sent and marked applied
after (spam/verdict_store.py); corrections that fail stay pending and are retried every
round with the same ids (idempotent at the shards). `restore` takes the stored verdicts
back after a restart, with the corrections still unapplied.
"""

from __future__ import annotations

import asyncio
import logging
import time
from dataclasses import dataclass

import grpc
from prometheus_client import Counter, Histogram

from protos import common_pb2, counter_pb2, spam_pb2
from reelstream.cassandra_client import StoreUnavailable
from reelstream.correction_router import apply_corrections
from reelstream.shard_directory import NoShardOwner, ShardDirectory
from spam.blocklist import Blocklist
from spam.config import SpamConfig
from spam.errors import CorrectionsPending
from spam.event_buffer import EventBuffer
from spam.event_frame import EventFrame
from spam.history import EventHistory
from spam.judge_rounds import JudgeRounds
from spam.model import SpamModel
from spam.reel_durations import ReelDurations
from spam.verdict_store import VerdictStore
from spam.verdicts import Verdict, VerdictBook

logger = logging.getLogger(__name__)

JUDGED = Counter("spam_events_judged_total", "Events taken into the judge's history")
DECIDED = Counter("spam_events_decided_total", "Events given their (final) model verdict")
FLAGGED = Counter("spam_events_removed_total", "Events removed as spam", ["kind"])
JUDGE_SECONDS = Histogram(
    "spam_judgement_seconds", "Duration of one judge round (model verdicts, lockstep run)"
)
CORRECTION_FAILURES = Counter("spam_correction_failures_total", "Failed correction attempts")


def now_ms() -> int:
    return int(time.time() * 1000)


@dataclass
class PendingCorrection:
    """A verdict's correction (or, with `reversal`, its reversal) not yet applied."""

    verdict: Verdict
    reversal: bool
    saved: bool = False
    """The verdict's current state is in the store (write-ahead of the correction)."""

    def batch(self) -> counter_pb2.CorrectionBatch:
        return self.verdict.reversal() if self.reversal else self.verdict.correction()


class SpamFilter:
    def __init__(
        self,
        config: SpamConfig,
        model: SpamModel,
        shards: ShardDirectory,
        durations: ReelDurations,
        instance: str,
        store: VerdictStore,
    ) -> None:
        self._config = config
        self._model = model
        self._shards = shards
        self._durations = durations
        self._store = store
        self.buffer = EventBuffer(config.max_buffered_events)
        self.history = EventHistory(int(config.history_s * 1000), config.max_history_events)
        self.rounds = JudgeRounds(
            model,
            self.history,
            int(config.settle_s * 1000),
            int(config.lockstep_interval_s * 1000),
            second_look_ms=int(config.second_look_s * 1000),
            threshold_offset=config.threshold_offset,
            repeat_offender_flags=config.repeat_offender_flags,
            lockstep_reach_back_ms=int(config.lockstep_reach_back_s * 1000),
        )
        self.book = VerdictBook(instance)
        self.blocklist = Blocklist(
            config.blocklist_min_flagged_events, config.blocklist_max_entries
        )
        self.blocklist_changed = asyncio.Condition()
        self._pending: list[PendingCorrection] = []
        self._lock = asyncio.Lock()
        self.rounds_run = 0

    async def restore(self) -> int:
        """Takes back the stored verdicts; their unapplied corrections (and reversals)
        become pending again. Returns how many verdicts were restored.

        Raises:
            StoreUnavailable: Cassandra did not answer.
        """
        stored = await self._store.load()
        async with self._lock:
            self.book.restore(s.verdict for s in stored)
            for entry in stored:
                if not entry.applied:
                    self._pending.append(PendingCorrection(entry.verdict, False, saved=True))
                if entry.verdict.reversed and not entry.reversal_applied:
                    self._pending.append(PendingCorrection(entry.verdict, True, saved=True))
        return len(stored)

    def submit(self, request: spam_pb2.SubmitEventsRequest) -> int:
        frame = EventFrame.from_batch(request.events, now_ms())
        return self.buffer.offer(frame, request.shed_before)

    async def run_judge(self) -> None:
        while True:
            await asyncio.sleep(self._config.judge_interval_s)
            await self.judge_once()

    async def judge_once(self) -> Verdict | None:
        """One judge round: admits what arrived, gives the settled events their verdict, runs
        lockstep when due; issues and applies a verdict for what it flagged."""
        async with self._lock:
            fresh = self.buffer.take_all()
            now = now_ms()
            if len(fresh):
                self.rounds.admit(fresh, await self._durations.of(fresh.reel_ids), now)
                JUDGED.inc(len(fresh))
            verdict = None
            # Rounds without new events still judge while events wait for their verdict.
            if self.rounds.due(now):
                started = time.perf_counter()
                judgement = await asyncio.to_thread(self.rounds.judge, now)
                JUDGE_SECONDS.observe(time.perf_counter() - started)
                outcome = self.rounds.settle(judgement)
                newly = outcome.removed
                lockstep = judgement.lockstep
                groups = "not run" if lockstep is None else f"{lockstep.groups} groups"
                verdict = self.book.draft(
                    self.history.events,
                    newly,
                    f"model {self._model.version}: {int(outcome.model_flagged.sum())} events;"
                    f" lockstep ({groups}): {int(outcome.lockstep_flagged.sum())} events",
                    now_ms(),
                )
                DECIDED.inc(int(judgement.decided.sum()))
                kinds = self.history.events.kinds[newly]
                FLAGGED.labels(kind="view").inc(int((kinds == common_pb2.EVENT_KIND_VIEW).sum()))
                FLAGGED.labels(kind="like").inc(int((kinds != common_pb2.EVENT_KIND_VIEW).sum()))
                if self.blocklist.learn(self.history.events, outcome.flagged, newly):
                    async with self.blocklist_changed:
                        self.blocklist_changed.notify_all()
                if verdict is not None:
                    self._pending.append(PendingCorrection(verdict, reversal=False))
                    logger.info(
                        "verdict",
                        extra={
                            "fields": {
                                "verdict": verdict.verdict_id,
                                "views_removed": -sum(verdict.view_deltas),
                                "likes_removed": -sum(verdict.like_deltas),
                                "users": len(verdict.user_ids),
                            }
                        },
                    )
            self.rounds_run += 1
            await self._apply_pending()
            return verdict

    async def _apply_pending(self) -> None:
        still: list[PendingCorrection] = []
        for pending in self._pending:
            correction = pending.batch()
            try:
                if not pending.saved:
                    await self._store.save(pending.verdict)
                    pending.saved = True
                await apply_corrections(correction, self._shards, self._config.rpc_timeout_s)
                await self._store.mark_applied(pending.verdict.verdict_id, pending.reversal)
            except (grpc.RpcError, NoShardOwner, StoreUnavailable) as exc:
                CORRECTION_FAILURES.inc()
                logger.warning(
                    "correction not applied yet; retrying next round",
                    extra={"fields": {"batch": correction.batch_id, "error": str(exc)}},
                )
                still.append(pending)
        self._pending = still

    @property
    def pending_corrections(self) -> int:
        return len(self._pending)

    async def reverse(self, verdict_id: str) -> Verdict:
        """Reverses a verdict: its removals are restored through the shards.

        Raises:
            UnknownVerdict, AlreadyReversed: nothing changed.
            CorrectionsPending: the reversal is pending and retried every round.
        """
        async with self._lock:
            verdict = self.book.reverse(verdict_id)
            # The removal itself must be applied first (it may still be pending).
            self._pending.append(PendingCorrection(verdict, reversal=True))
            if self.blocklist.forgive(verdict.user_ids):
                async with self.blocklist_changed:
                    self.blocklist_changed.notify_all()
            await self._apply_pending()
            if self._pending:
                raise CorrectionsPending("counter shards unreachable; the reversal is retried")
            return verdict

    def blocklist_message(self) -> spam_pb2.Blocklist:
        return spam_pb2.Blocklist(
            version=self.blocklist.version,
            user_ids=list(self.blocklist.users),
            ip_hashes=list(self.blocklist.ip_hashes),
        )
