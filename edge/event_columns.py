"""Accepted events as numpy columns: the form the edge validates, journals and aggregates."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from protos import common_pb2

U64 = npt.NDArray[np.uint64]
I64 = npt.NDArray[np.int64]


@dataclass(frozen=True)
class EventColumns:
    """Accepted events as numpy columns (what the journal keeps in memory)."""

    reel_ids: U64
    user_ids: U64
    kinds: I64
    ts_ms: I64

    def __len__(self) -> int:
        return len(self.reel_ids)

    @classmethod
    def from_batch(cls, batch: common_pb2.EventBatch) -> EventColumns:
        count = len(batch.reel_ids)
        return cls(
            np.fromiter(batch.reel_ids, dtype=np.uint64, count=count),
            np.fromiter(batch.user_ids, dtype=np.uint64, count=count),
            np.fromiter(batch.kinds, dtype=np.int64, count=count),
            np.fromiter(batch.client_ts_ms, dtype=np.int64, count=count),
        )

    @classmethod
    def concat(cls, parts: Sequence[EventColumns]) -> EventColumns:
        return cls(
            np.concatenate([p.reel_ids for p in parts]),
            np.concatenate([p.user_ids for p in parts]),
            np.concatenate([p.kinds for p in parts]),
            np.concatenate([p.ts_ms for p in parts]),
        )

    def to_batch(self) -> common_pb2.EventBatch:
        batch = common_pb2.EventBatch()
        batch.reel_ids.extend(self.reel_ids.tolist())
        batch.user_ids.extend(self.user_ids.tolist())
        batch.kinds.extend(self.kinds.tolist())
        batch.client_ts_ms.extend(self.ts_ms.tolist())
        return batch

    def view_counts(self) -> dict[int, int]:
        """Views per reel."""
        reels, counts = np.unique(
            self.reel_ids[self.kinds == common_pb2.EVENT_KIND_VIEW], return_counts=True
        )
        return dict(zip(reels.tolist(), counts.tolist(), strict=True))
