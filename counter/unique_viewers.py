"""Distinct viewers of a reel: exact up to 1,000, then a HyperLogLog sketch.

Both forms merge by union (set union, register max), which is idempotent and commutative, so
replaying batches after a crash can never count a viewer twice. The sketch uses 2^16
registers: standard error 1.04/sqrt(65536) = 0.41%, so 95% of estimates are within ~0.8%;
below 2.5 x 2^16 distinct viewers the linear-counting estimator applies and is tighter.
"""

from __future__ import annotations

import math
import zlib
from array import array
from collections.abc import Sequence

import numpy as np
import numpy.typing as npt

from reelstream.hashing import mix64_array
from reelstream.sorted_arrays import sorted_union

EXACT_LIMIT = 1_000
SMALL_MERGE_LIMIT = 64
PRECISION = 16
REGISTERS = 1 << PRECISION
_ALPHA = 0.7213 / (1 + 1.079 / REGISTERS)
_EXACT_TAG = b"E"
_SKETCH_TAG = b"H"

U64 = npt.NDArray[np.uint64]

# Shared by every empty set of viewers (an empty array costs ~112 bytes, and a shard holds
# one set per reel); read-only, and never changed in place: every update assigns a new array.
_NO_IDS: U64 = np.empty(0, dtype=np.uint64)
_NO_IDS.flags.writeable = False


def leading_zeros(values: U64) -> npt.NDArray[np.int64]:
    """Exact count of leading zero bits of each uint64 (64 for zero), by binary search;
    a float log2 would round values just below a power of two up and bias the sketch."""
    x = values.copy()
    zeros = np.zeros(x.shape, dtype=np.int64)
    for shift in (32, 16, 8, 4, 2, 1):
        top_clear = x < (np.uint64(1) << np.uint64(64 - shift))
        zeros += np.where(top_clear, shift, 0)
        x = np.where(top_clear, x << np.uint64(shift), x)
    return np.asarray(zeros + (x == 0), dtype=np.int64)


class UniqueViewers:
    """The distinct viewers of one reel."""

    __slots__ = ("_exact", "_registers")

    def __init__(self) -> None:
        self._exact: U64 = _NO_IDS
        self._registers: npt.NDArray[np.uint8] | None = None

    def add(self, user_ids: U64) -> None:
        if self._registers is None:
            self._exact = sorted_union(self._exact, user_ids.astype(np.uint64, copy=False))
            if len(self._exact) <= EXACT_LIMIT:
                return
            self._registers = np.zeros(REGISTERS, dtype=np.uint8)
            user_ids, self._exact = self._exact, _NO_IDS
        hashes = mix64_array(user_ids.astype(np.uint64, copy=False))
        index = (hashes >> np.uint64(64 - PRECISION)).astype(np.int64)
        rest = hashes << np.uint64(PRECISION)
        # Rank = leading zeros of the remaining 48 bits + 1 (capped when they are all zero).
        rank = np.minimum(leading_zeros(rest) + 1, 64 - PRECISION + 1).astype(np.uint8)
        np.maximum.at(self._registers, index, rank)

    def add_list(self, user_ids: Sequence[int]) -> None:
        """`add` for ids in a Python list or an `array("Q")`. Small exact sets (the long
        tail of reels) merge as Python sets: numpy's per-call overhead made each small
        merge cost ~15 us."""
        if self._registers is None and len(self._exact) + len(user_ids) <= SMALL_MERGE_LIMIT:
            merged = set(self._exact.tolist())
            merged.update(user_ids)
            if len(merged) > len(self._exact):  # else: only viewers seen before
                self._exact = np.array(sorted(merged), dtype=np.uint64)
            return
        if isinstance(user_ids, array):
            # A view of the array's memory, released when `add` returns (it keeps none).
            self.add(np.frombuffer(user_ids, dtype=np.uint64))
        else:
            self.add(np.fromiter(user_ids, dtype=np.uint64, count=len(user_ids)))

    def exact_ids(self) -> int | None:
        """How many ids the exact set holds; None once the viewers are a sketch."""
        return len(self._exact) if self._registers is None else None

    def count(self) -> int:
        if self._registers is None:
            return len(self._exact)
        registers = self._registers.astype(np.float64)
        raw = _ALPHA * REGISTERS * REGISTERS / float(np.sum(np.exp2(-registers)))
        zeros = int(np.count_nonzero(self._registers == 0))
        if raw <= 2.5 * REGISTERS and zeros:
            return round(REGISTERS * math.log(REGISTERS / zeros))
        return round(raw)

    def merge(self, other: UniqueViewers) -> None:
        if other._registers is None:
            self.add(other._exact)
            return
        if self._registers is None:
            exact = self._exact
            self._registers = other._registers.copy()
            self._exact = _NO_IDS
            self.add(exact)
        else:
            np.maximum(self._registers, other._registers, out=self._registers)

    def to_bytes(self) -> bytes:
        if self._registers is None:
            return _EXACT_TAG + self._exact.astype("<u8").tobytes()
        return _SKETCH_TAG + zlib.compress(self._registers.tobytes(), 1)

    @classmethod
    def from_bytes(cls, data: bytes) -> UniqueViewers:
        viewers = cls()
        if not data:
            return viewers
        tag, body = data[:1], data[1:]
        if tag == _EXACT_TAG:
            viewers._exact = np.frombuffer(body, dtype="<u8").astype(np.uint64)
        elif tag == _SKETCH_TAG:
            viewers._registers = np.frombuffer(zlib.decompress(body), dtype=np.uint8).copy()
        else:
            raise ValueError(f"unknown unique-viewers encoding {tag!r}")
        return viewers
