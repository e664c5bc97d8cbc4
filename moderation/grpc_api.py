"""gRPC servicer of the moderation tier: the only module that maps its errors to statuses."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any, NoReturn

import grpc
from grpc import aio

from moderation.analysis import Analyzer, Upload
from moderation.errors import (
    AnalysisBusy,
    AppealRefused,
    ClaimRefused,
    NotClaimed,
    UnknownBank,
    UnknownItem,
    UnknownReel,
)
from moderation.hash_banks import HashBanks
from moderation.hash_index import FrameHash, hex_to_words
from moderation.policy import Outcome
from moderation.review_priority import priority
from moderation.review_queue import AGE_RESTRICT, KEEP, REMOVE, ReviewQueue
from moderation.signals import Signal
from moderation.store import ModerationStore, ReviewItem, now_ms
from protos import moderation_pb2, moderation_pb2_grpc
from reelstream.cassandra_client import StoreUnavailable

logger = logging.getLogger(__name__)

Context = aio.ServicerContext[Any, Any]

DEFAULT_LEASE_S = 120
DEFAULT_LISTING = 100
MAX_LISTING = 1000
MAX_BANK_HASHES = 10_000
VERDICTS = {
    Outcome.PUBLISH: moderation_pb2.VERDICT_PUBLISH,
    Outcome.HOLD_FOR_REVIEW: moderation_pb2.VERDICT_HOLD_FOR_REVIEW,
    Outcome.REMOVE: moderation_pb2.VERDICT_REMOVE,
}
DECISIONS = {
    moderation_pb2.DECISION_KEEP: KEEP,
    moderation_pb2.DECISION_REMOVE: REMOVE,
    moderation_pb2.DECISION_AGE_RESTRICT: AGE_RESTRICT,
}
_STATUS_OF_ERROR: tuple[tuple[type[Exception], grpc.StatusCode], ...] = (
    (UnknownBank, grpc.StatusCode.NOT_FOUND),
    (UnknownReel, grpc.StatusCode.NOT_FOUND),
    (UnknownItem, grpc.StatusCode.NOT_FOUND),
    (NotClaimed, grpc.StatusCode.FAILED_PRECONDITION),
    (ClaimRefused, grpc.StatusCode.FAILED_PRECONDITION),
    (AppealRefused, grpc.StatusCode.FAILED_PRECONDITION),
    (AnalysisBusy, grpc.StatusCode.RESOURCE_EXHAUSTED),
    (StoreUnavailable, grpc.StatusCode.UNAVAILABLE),
    (TimeoutError, grpc.StatusCode.DEADLINE_EXCEEDED),
)


async def _abort(context: Context, exc: Exception) -> NoReturn:
    for error_type, code in _STATUS_OF_ERROR:
        if isinstance(exc, error_type):
            await context.abort(code, str(exc))
    logger.exception("unexpected error", exc_info=exc)
    await context.abort(grpc.StatusCode.INTERNAL, "internal error")
    raise AssertionError("unreachable")


def _signal_messages(signals: tuple[Signal, ...] | list[Signal]) -> list[moderation_pb2.Signal]:
    return [moderation_pb2.Signal(name=s.name, score=s.score, reason=s.reason) for s in signals]


def _frame_hashes(hashes: Any) -> list[FrameHash]:
    found = []
    for h in hashes:
        if h.kind not in ("vpdq", "pdq"):
            raise ValueError(f"hash kind must be vpdq or pdq, got {h.kind!r}")
        hex_to_words(h.hash_hex)
        found.append(FrameHash(h.kind, h.hash_hex.lower(), h.quality, h.frame))
    return found


def _item_message(
    item: ReviewItem, rank: float, lease_expires_ms: int
) -> moderation_pb2.ReviewItem:
    return moderation_pb2.ReviewItem(
        item_id=item.item_id,
        reel_id=item.reel_id,
        priority=rank,
        signals=_signal_messages(item.signals),
        lease_expires_ms=lease_expires_ms,
        is_appeal=item.kind == "appeal",
    )


class ModerationServicer(moderation_pb2_grpc.ModerationServiceServicer):
    def __init__(
        self,
        analyzer: Analyzer,
        queue: ReviewQueue,
        banks: HashBanks,
        store: ModerationStore,
        max_lease_s: float,
    ) -> None:
        self._analyzer = analyzer
        self._queue = queue
        self._banks = banks
        self._store = store
        self._max_lease_s = max_lease_s

    async def AnalyzeReel(
        self, request: moderation_pb2.AnalyzeReelRequest, context: Context
    ) -> moderation_pb2.AnalyzeReelResponse:
        if request.reel_id == 0:
            await context.abort(grpc.StatusCode.INVALID_ARGUMENT, "reel_id must be set")
        source = Path(request.source_path) if request.source_path else None
        upload = Upload(
            reel_id=request.reel_id,
            caption=request.caption,
            hashtags=tuple(request.hashtags),
            stills=tuple(Path(p) for p in request.stills),
            video=source if source is not None and source.is_file() else None,
        )
        try:
            analysis = await self._analyzer.analyze(upload)
            await self._store.put_reel_hashes(request.reel_id, analysis.hashes)
            decision = analysis.decision
            await self._store.audit(
                request.reel_id, "auto", f"analysis_{decision.outcome.value}",
                decision.reason or "no signal over its threshold", analysis.signals,
            )  # fmt: skip
            item_id = ""
            if decision.outcome is Outcome.HOLD_FOR_REVIEW:
                likelihood = max(s.score for s in decision.triggered)
                item = await self._queue.open_review(
                    request.reel_id, analysis.signals, likelihood, "auto"
                )
                item_id = item.item_id
        except Exception as exc:
            await _abort(context, exc)
        return moderation_pb2.AnalyzeReelResponse(
            verdict=VERDICTS[decision.outcome],
            reason=decision.reason,
            signals=_signal_messages(analysis.signals),
            item_id=item_id,
            analysis_seconds=analysis.seconds,
        )

    async def ReportReel(
        self, request: moderation_pb2.ReportReelRequest, context: Context
    ) -> moderation_pb2.ReportReelResponse:
        if request.reel_id == 0 or request.reporter_id == 0:
            await context.abort(
                grpc.StatusCode.INVALID_ARGUMENT, "reel_id and reporter_id must be set"
            )
        if request.reason == moderation_pb2.REPORT_REASON_UNSPECIFIED:
            await context.abort(
                grpc.StatusCode.INVALID_ARGUMENT, "reason must be one of ReportReason"
            )
        reason = (
            moderation_pb2.ReportReason.Name(request.reason).removeprefix("REPORT_REASON_").lower()
        )
        try:
            outcome = await self._queue.report(
                request.reel_id, request.reporter_id, reason, request.note
            )
        except Exception as exc:
            await _abort(context, exc)
        return moderation_pb2.ReportReelResponse(
            counted=outcome.counted, escalated=outcome.escalated, hidden=outcome.hidden
        )

    async def ClaimReview(
        self, request: moderation_pb2.ClaimReviewRequest, context: Context
    ) -> moderation_pb2.ReviewItem:
        if not request.moderator_id:
            await context.abort(grpc.StatusCode.INVALID_ARGUMENT, "moderator_id must be set")
        lease_s = min(float(request.lease_seconds or DEFAULT_LEASE_S), self._max_lease_s)
        try:
            if request.item_id:
                claimed = await self._queue.claim_item(
                    request.item_id, request.moderator_id, lease_s
                )
            else:
                found = await self._queue.claim(request.moderator_id, lease_s)
                if found is None:
                    await context.abort(
                        grpc.StatusCode.NOT_FOUND, "no open review item for this moderator"
                    )
                    raise AssertionError("unreachable")
                claimed = found
        except Exception as exc:
            await _abort(context, exc)
        return _item_message(claimed.item, claimed.priority, claimed.lease_expires_ms)

    async def ListReviewQueue(
        self, request: moderation_pb2.ListReviewQueueRequest, context: Context
    ) -> moderation_pb2.ReviewQueueListing:
        limit = min(request.limit or DEFAULT_LISTING, MAX_LISTING)
        try:
            items = await self._queue.open_items()
        except Exception as exc:
            await _abort(context, exc)
        now = now_ms()
        return moderation_pb2.ReviewQueueListing(
            items=[
                moderation_pb2.QueuedItem(
                    item=_item_message(
                        item, priority(item.severity, item.likelihood, item.reach),
                        item.lease_expires_ms,
                    ),
                    claimed_by=item.claimed_by if item.lease_expires_ms >= now else "",
                    created_ms=item.created_ms,
                    excluded_moderator=item.excluded_moderator,
                )
                for item in items[:limit]
            ],
            total_open=len(items),
        )  # fmt: skip

    async def DecideReview(
        self, request: moderation_pb2.DecideReviewRequest, context: Context
    ) -> moderation_pb2.DecideReviewResponse:
        decision = DECISIONS.get(request.decision)
        if decision is None or not request.item_id or not request.moderator_id:
            await context.abort(
                grpc.StatusCode.INVALID_ARGUMENT, "item_id, moderator_id and a decision must be set"
            )
            raise AssertionError("unreachable")
        if not request.reason.strip():
            await context.abort(grpc.StatusCode.INVALID_ARGUMENT, "a decision needs a reason")
        try:
            audit_id = await self._queue.decide(
                request.item_id, request.moderator_id, decision, request.reason
            )
        except Exception as exc:
            await _abort(context, exc)
        return moderation_pb2.DecideReviewResponse(audit_id=audit_id)

    async def Appeal(
        self, request: moderation_pb2.AppealRequest, context: Context
    ) -> moderation_pb2.AppealResponse:
        try:
            item_id = await self._queue.appeal(
                request.reel_id, request.creator_id, request.statement
            )
        except Exception as exc:
            await _abort(context, exc)
        return moderation_pb2.AppealResponse(item_id=item_id)

    async def GetAuditTrail(
        self, request: moderation_pb2.GetAuditTrailRequest, context: Context
    ) -> moderation_pb2.AuditTrail:
        try:
            records = await self._store.audit_trail(request.reel_id)
        except Exception as exc:
            await _abort(context, exc)
        return moderation_pb2.AuditTrail(
            entries=[
                moderation_pb2.AuditEntry(
                    audit_id=r.audit_id, actor=r.actor, at_ms=r.at_ms, action=r.action,
                    reason=r.reason, signals=_signal_messages(r.signals),
                )
                for r in records
            ]
        )  # fmt: skip

    async def AddToBank(
        self, request: moderation_pb2.AddToBankRequest, context: Context
    ) -> moderation_pb2.AddToBankResponse:
        if not request.bank or len(request.hashes) > MAX_BANK_HASHES:
            await context.abort(
                grpc.StatusCode.INVALID_ARGUMENT,
                f"bank must be set; at most {MAX_BANK_HASHES} hashes",
            )
        try:
            hashes = _frame_hashes(request.hashes)
        except ValueError as exc:
            await context.abort(grpc.StatusCode.INVALID_ARGUMENT, str(exc))
            raise AssertionError("unreachable") from None
        content_id = request.content_id
        try:
            if request.reel_id:
                hashes = await self._store.reel_hashes(request.reel_id)
                content_id = content_id or f"reel:{request.reel_id}"
            if not content_id:
                await context.abort(
                    grpc.StatusCode.INVALID_ARGUMENT, "content_id or reel_id must be set"
                )
            added = await self._banks.add(request.bank, content_id, hashes)
        except Exception as exc:
            await _abort(context, exc)
        return moderation_pb2.AddToBankResponse(added=added)

    async def RemoveFromBank(
        self, request: moderation_pb2.RemoveFromBankRequest, context: Context
    ) -> moderation_pb2.RemoveFromBankResponse:
        try:
            removed = await self._banks.remove(request.bank, request.content_id)
        except Exception as exc:
            await _abort(context, exc)
        return moderation_pb2.RemoveFromBankResponse(removed=removed)

    async def LookupBank(
        self, request: moderation_pb2.LookupBankRequest, context: Context
    ) -> moderation_pb2.LookupBankResponse:
        try:
            hashes = _frame_hashes(request.hashes)
        except ValueError as exc:
            await context.abort(grpc.StatusCode.INVALID_ARGUMENT, str(exc))
            raise AssertionError("unreachable") from None
        try:
            matches = self._banks.lookup(hashes, request.bank)
        except Exception as exc:
            await _abort(context, exc)
        return moderation_pb2.LookupBankResponse(
            matches=[
                moderation_pb2.BankMatch(
                    bank=m.bank, content_id=m.content_id, matched_fraction=m.matched_fraction,
                    min_distance=m.min_distance,
                )
                for m in matches
            ]
        )  # fmt: skip
