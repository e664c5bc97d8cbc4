"""gRPC servicer of the spam tier: the only module that maps its errors to statuses."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import grpc
from grpc import aio

from protos import spam_pb2, spam_pb2_grpc
from spam.errors import AlreadyReversed, CorrectionsPending, UnknownVerdict
from spam.spam_filter import SpamFilter

Context = aio.ServicerContext[Any, Any]

MAX_SUBMITTED_EVENTS = 100_000


class SpamServicer(spam_pb2_grpc.SpamServiceServicer):
    def __init__(self, spam_filter: SpamFilter) -> None:
        self._filter = spam_filter

    async def SubmitEvents(
        self, request: spam_pb2.SubmitEventsRequest, context: Context
    ) -> spam_pb2.SubmitEventsResponse:
        events = request.events
        count = len(events.reel_ids)
        if count > MAX_SUBMITTED_EVENTS:
            await context.abort(
                grpc.StatusCode.INVALID_ARGUMENT, f"at most {MAX_SUBMITTED_EVENTS} events per call"
            )
        if len(events.user_ids) != count or len(events.kinds) != count:
            await context.abort(
                grpc.StatusCode.INVALID_ARGUMENT, "reel_ids, user_ids and kinds differ in length"
            )
        for name in ("watch_ms", "client_ts_ms", "devices", "ip_hashes"):
            if len(getattr(events, name)) not in (0, count):
                await context.abort(grpc.StatusCode.INVALID_ARGUMENT, f"{name} has a bad length")
        if len(events.countries) not in (0, 2 * count):
            await context.abort(grpc.StatusCode.INVALID_ARGUMENT, "countries: 2 bytes per event")
        accepted = self._filter.submit(request)
        if count and not accepted:
            await context.abort(
                grpc.StatusCode.RESOURCE_EXHAUSTED, "spam buffer full; events shed (counted)"
            )
        return spam_pb2.SubmitEventsResponse(accepted=accepted)

    async def WatchBlocklist(
        self, request: spam_pb2.WatchBlocklistRequest, context: Context
    ) -> AsyncIterator[spam_pb2.Blocklist]:
        changed = self._filter.blocklist_changed
        sent = -1
        while True:
            if self._filter.blocklist.version != sent:
                message = self._filter.blocklist_message()
                sent = message.version
                yield message
            async with changed:
                if self._filter.blocklist.version == sent:
                    await changed.wait()

    async def ReverseVerdict(
        self, request: spam_pb2.ReverseVerdictRequest, context: Context
    ) -> spam_pb2.ReverseVerdictResponse:
        try:
            verdict = await self._filter.reverse(request.verdict_id)
        except UnknownVerdict:
            await context.abort(grpc.StatusCode.NOT_FOUND, f"no verdict {request.verdict_id}")
            raise AssertionError("unreachable") from None
        except AlreadyReversed:
            await context.abort(
                grpc.StatusCode.FAILED_PRECONDITION, f"{request.verdict_id} was reversed already"
            )
            raise AssertionError("unreachable") from None
        except CorrectionsPending as exc:
            await context.abort(grpc.StatusCode.UNAVAILABLE, str(exc))
            raise AssertionError("unreachable") from None
        return spam_pb2.ReverseVerdictResponse(
            views_restored=-sum(verdict.view_deltas), likes_restored=-sum(verdict.like_deltas)
        )

    async def GetSpamReport(
        self, request: spam_pb2.GetSpamReportRequest, context: Context
    ) -> spam_pb2.SpamReport:
        views, likes, ids = self._filter.book.report(request.reel_id)
        return spam_pb2.SpamReport(
            reel_id=request.reel_id, views_removed=views, likes_removed=likes, verdict_ids=ids
        )
