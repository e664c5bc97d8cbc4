"""Accepted events as numpy columns: the form the edge validates, journals and aggregates."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from protos import common_pb2
from reelstream.sorted_arrays import distinct_counts

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
        # upb's repeated fields export __array__: one C copy, not one Python int per value.
        return cls(
            np.asarray(batch.reel_ids, dtype=np.uint64),
            np.asarray(batch.user_ids, dtype=np.uint64),
            np.asarray(batch.kinds, dtype=np.int64),
            np.asarray(batch.client_ts_ms, dtype=np.int64),
        )

    @classmethod
    def concat(cls, parts: Sequence[EventColumns]) -> EventColumns:
        return cls(
            np.concatenate([p.reel_ids for p in parts]),
            np.concatenate([p.user_ids for p in parts]),
            np.concatenate([p.kinds for p in parts]),
            np.concatenate([p.ts_ms for p in parts]),
        )

    def view_counts(self) -> dict[int, int]:
        """Views per reel."""
        reels, counts = distinct_counts(self.reel_ids[self.kinds == common_pb2.EVENT_KIND_VIEW])
        return dict(zip(reels.tolist(), counts.tolist(), strict=True))
