"""The console's client of the moderation service: list the queue, and decide an item by
claiming it (a lease, so two moderators never decide it both) then deciding it, through the
same ClaimReview/DecideReview RPCs as any moderator tool (audit and takedown included).

gRPC errors become `ReviewRefused` with the HTTP status the console answers with.
"""

from __future__ import annotations

from dataclasses import dataclass

import grpc
from grpc import aio

from origin.errors import OriginError
from protos import moderation_pb2, moderation_pb2_grpc
from reelstream.caller_policy import MODERATOR
from reelstream.channels import open_channel

DECISIONS = {
    "keep": moderation_pb2.DECISION_KEEP,
    "remove": moderation_pb2.DECISION_REMOVE,
    "age_restrict": moderation_pb2.DECISION_AGE_RESTRICT,
}
DECISION_LEASE_S = 60
_HTTP_STATUS = {
    grpc.StatusCode.INVALID_ARGUMENT: 400,
    grpc.StatusCode.NOT_FOUND: 404,
    grpc.StatusCode.FAILED_PRECONDITION: 409,
    grpc.StatusCode.UNAVAILABLE: 503,
    grpc.StatusCode.DEADLINE_EXCEEDED: 503,
    grpc.StatusCode.RESOURCE_EXHAUSTED: 503,
}


class ReviewRefused(OriginError):
    """The moderation service refused or could not answer (`status`: the HTTP answer)."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status


@dataclass(frozen=True)
class QueueListing:
    items: tuple[moderation_pb2.QueuedItem, ...]
    total_open: int


def _refused(exc: aio.AioRpcError) -> ReviewRefused:
    status = _HTTP_STATUS.get(exc.code(), 502)
    return ReviewRefused(status, f"moderation service: {exc.details() or exc.code().name}")


class ReviewClient:
    def __init__(self, address: str, timeout_s: float) -> None:
        self._channel = open_channel(address, identity=MODERATOR)
        self._stub = moderation_pb2_grpc.ModerationServiceStub(self._channel)
        self._timeout_s = timeout_s

    async def queue(self, limit: int) -> QueueListing:
        try:
            listing = await self._stub.ListReviewQueue(
                moderation_pb2.ListReviewQueueRequest(limit=limit), timeout=self._timeout_s
            )
        except aio.AioRpcError as exc:
            raise _refused(exc) from None
        return QueueListing(tuple(listing.items), listing.total_open)

    async def decide(self, moderator: str, item_id: str, decision: str, reason: str) -> str:
        """Claims the item for `moderator` and applies the decision; the audit id.

        Raises:
            ReviewRefused: claimed by another moderator, decided already, service down, ...
        """
        try:
            await self._stub.ClaimReview(
                moderation_pb2.ClaimReviewRequest(
                    moderator_id=moderator, lease_seconds=DECISION_LEASE_S, item_id=item_id
                ),
                timeout=self._timeout_s,
            )
            response = await self._stub.DecideReview(
                moderation_pb2.DecideReviewRequest(
                    item_id=item_id,
                    moderator_id=moderator,
                    decision=DECISIONS[decision],
                    reason=reason,
                ),
                timeout=self._timeout_s,
            )
        except aio.AioRpcError as exc:
            raise _refused(exc) from None
        return response.audit_id

    async def close(self) -> None:
        await self._channel.close()
