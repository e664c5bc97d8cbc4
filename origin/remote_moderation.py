"""The origin's moderation hook when the moderation service is configured: AnalyzeReel over
gRPC with the reel's stills and source path (the moderation service reads them from the
media volume both processes share).

Fail closed: when the service cannot answer after a few attempts, the reel is held for
review (IN_REVIEW) rather than published unchecked; the reason says so.
"""

from __future__ import annotations

import asyncio
import logging

from grpc import aio

from origin.moderation_hook import ModerationDecision, ModerationSubject, Verdict
from protos import moderation_pb2, moderation_pb2_grpc
from reelstream.channels import open_channel

logger = logging.getLogger(__name__)

ATTEMPTS = 3
VERDICT_OF = {
    moderation_pb2.VERDICT_PUBLISH: Verdict.PUBLISH,
    moderation_pb2.VERDICT_HOLD_FOR_REVIEW: Verdict.HOLD_FOR_REVIEW,
    moderation_pb2.VERDICT_REMOVE: Verdict.REMOVE,
}


class RemoteModeration:
    def __init__(self, address: str, timeout_s: float) -> None:
        self._channel = open_channel(address)
        self._stub = moderation_pb2_grpc.ModerationServiceStub(self._channel)
        self._timeout_s = timeout_s

    async def review(self, subject: ModerationSubject) -> ModerationDecision:
        request = moderation_pb2.AnalyzeReelRequest(
            reel_id=subject.reel_id,
            creator_id=subject.creator_id,
            caption=subject.caption,
            hashtags=list(subject.hashtags),
            content_hash=subject.content_hash,
            duration_s=subject.duration_s,
            media_dir=str(subject.media_dir),
            stills=[str(p) for p in subject.stills],
            source_path=str(subject.source) if subject.source else "",
        )
        delay_s = 1.0
        for attempt in range(1, ATTEMPTS + 1):
            try:
                response = await self._stub.AnalyzeReel(request, timeout=self._timeout_s)
                return ModerationDecision(VERDICT_OF[response.verdict], response.reason)
            except aio.AioRpcError as exc:
                logger.warning(
                    "moderation call failed",
                    extra={"fields": {"reel_id": subject.reel_id, "attempt": attempt,
                                      "code": exc.code().name}},
                )  # fmt: skip
                last = exc.code().name
            except KeyError:
                last = "unknown verdict"
            if attempt < ATTEMPTS:
                await asyncio.sleep(delay_s)
                delay_s *= 2
        return ModerationDecision(
            Verdict.HOLD_FOR_REVIEW, f"held: automatic moderation unavailable ({last})"
        )

    async def close(self) -> None:
        await self._channel.close()
