"""Raw viewer events as numpy columns: what the spam filter stores, featurises and scores.

Unlike the edge's `EventColumns` (what counting needs), a frame keeps every column the
filter looks at: watch time, country, device and the keyed IP hash. Countries are packed
into one uint16 per event (the two ASCII bytes, first byte high); 0 means unknown, like an
IP hash or device of 0.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, fields

import numpy as np
import numpy.typing as npt

from protos import common_pb2

U64 = npt.NDArray[np.uint64]
I64 = npt.NDArray[np.int64]
U16 = npt.NDArray[np.uint16]
BoolArray = npt.NDArray[np.bool_]

VIEW = int(common_pb2.EVENT_KIND_VIEW)
LIKE = int(common_pb2.EVENT_KIND_LIKE)
UNLIKE = int(common_pb2.EVENT_KIND_UNLIKE)


def pack_country(code: str) -> int:
    """'DE' -> 0x4445; anything not two ASCII letters -> 0 (unknown)."""
    raw = code.encode("ascii", "replace")
    if len(raw) != 2:
        return 0
    return (raw[0] << 8) | raw[1]


def unpack_country(packed: int) -> str:
    return "" if packed == 0 else bytes(((packed >> 8) & 0xFF, packed & 0xFF)).decode("ascii")


@dataclass(frozen=True)
class EventFrame:
    """Events as columns; entry i of every column describes event i."""

    reel_ids: U64
    user_ids: U64
    kinds: I64
    watch_ms: I64
    ts_ms: I64
    countries: U16
    devices: I64
    ip_hashes: U64

    def __len__(self) -> int:
        return len(self.reel_ids)

    @classmethod
    def empty(cls) -> EventFrame:
        return cls(
            np.zeros(0, np.uint64),
            np.zeros(0, np.uint64),
            np.zeros(0, np.int64),
            np.zeros(0, np.int64),
            np.zeros(0, np.int64),
            np.zeros(0, np.uint16),
            np.zeros(0, np.int64),
            np.zeros(0, np.uint64),
        )

    @classmethod
    def from_batch(cls, batch: common_pb2.EventBatch, now_ms: int) -> EventFrame:
        """Columns of a (shape-checked) batch; missing optional columns become unknown, a
        missing client timestamp becomes `now_ms`."""
        count = len(batch.reel_ids)

        def column(values: Sequence[int], dtype: type) -> npt.NDArray[np.generic]:
            if len(values) == count and count:
                return np.fromiter(values, dtype=dtype, count=count)
            return np.zeros(count, dtype=dtype)

        ts = column(batch.client_ts_ms, np.int64).astype(np.int64)
        ts[ts == 0] = now_ms
        if len(batch.countries) == 2 * count and count:
            countries = np.frombuffer(batch.countries, dtype=">u2").astype(np.uint16)
        else:
            countries = np.zeros(count, dtype=np.uint16)
        return cls(
            column(batch.reel_ids, np.uint64).astype(np.uint64),
            column(batch.user_ids, np.uint64).astype(np.uint64),
            column(batch.kinds, np.int64).astype(np.int64),
            column(batch.watch_ms, np.int64).astype(np.int64),
            ts,
            countries,
            column(batch.devices, np.int64).astype(np.int64),
            column(batch.ip_hashes, np.uint64).astype(np.uint64),
        )

    def to_batch(self) -> common_pb2.EventBatch:
        batch = common_pb2.EventBatch()
        batch.reel_ids.extend(self.reel_ids.tolist())
        batch.user_ids.extend(self.user_ids.tolist())
        batch.kinds.extend(self.kinds.tolist())
        batch.watch_ms.extend(self.watch_ms.tolist())
        batch.client_ts_ms.extend(self.ts_ms.tolist())
        batch.countries = self.countries.astype(">u2").tobytes()
        batch.devices.extend(self.devices.tolist())
        batch.ip_hashes.extend(self.ip_hashes.tolist())
        return batch

    def take(self, index: npt.NDArray[np.intp] | BoolArray) -> EventFrame:
        """The events at `index` (positions or a mask), in that order."""
        return EventFrame(*(getattr(self, f.name)[index] for f in fields(self)))

    @classmethod
    def concat(cls, parts: Sequence[EventFrame]) -> EventFrame:
        if not parts:
            return cls.empty()
        return cls(*(np.concatenate([getattr(p, f.name) for p in parts]) for f in fields(cls)))
