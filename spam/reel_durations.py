"""Reel durations from the origin (GetReels), cached, for the watch-ratio features.

Unknown reels, or an unreachable origin, give 0 ("unknown"): the ratio features are then
NaN for those events rather than the judgement failing.
"""

from __future__ import annotations

import logging
from collections import OrderedDict

import grpc
import numpy as np
import numpy.typing as npt

from protos import origin_pb2, origin_pb2_grpc
from reelstream.member_pool import MemberPool
from spam.windows import unique_sorted

logger = logging.getLogger(__name__)

MAX_IDS_PER_CALL = 1000
I64 = npt.NDArray[np.int64]
U64 = npt.NDArray[np.uint64]


class ReelDurations:
    def __init__(self, origins: MemberPool | None, max_entries: int, timeout_s: float) -> None:
        # Balanced over the origin replicas; None: durations unknown (0).
        self._origins = origins
        self._max_entries = max_entries
        self._timeout_s = timeout_s
        self._known: OrderedDict[int, int] = OrderedDict()

    async def of(self, reel_ids: U64) -> I64:
        """The duration (ms, 0 unknown) of every reel of `reel_ids`."""
        distinct = [int(r) for r in unique_sorted(reel_ids).tolist()]
        missing = [r for r in distinct if r not in self._known]
        if self._origins is not None:
            origin = self._origins.stub(origin_pb2_grpc.OriginServiceStub)
            for start in range(0, len(missing), MAX_IDS_PER_CALL):
                chunk = missing[start : start + MAX_IDS_PER_CALL]
                try:
                    response = await origin.GetReels(
                        origin_pb2.GetReelsRequest(reel_ids=chunk), timeout=self._timeout_s
                    )
                except grpc.RpcError as exc:
                    logger.warning("origin lookup failed", extra={"fields": {"error": exc}})
                    break
                for reel in response.reels:
                    self._known[reel.reel_id] = reel.duration_ms
        while len(self._known) > self._max_entries:
            self._known.popitem(last=False)
        table = np.array([self._known.get(r, 0) for r in distinct], dtype=np.int64)
        if not distinct:
            return np.zeros(len(reel_ids), dtype=np.int64)
        keys = np.array(distinct, dtype=np.uint64)
        result: I64 = table[np.searchsorted(keys, reel_ids)]
        return result

    async def close(self) -> None:
        if self._origins is not None:
            await self._origins.close()
