"""Limits on request values shared by every tier's gRPC boundary: how many reels one call
may name, and the id range every store can hold (Cassandra `bigint` is signed 64-bit, so
ids are in [1, 2^63); the edge refuses events outside it too)."""

from __future__ import annotations

from collections.abc import Collection

import numpy as np

MAX_REELS_PER_CALL = 1000
MAX_ID = 2**63 - 1


def reel_id_problem(reel_id: int) -> str | None:
    """Why `reel_id` cannot name a reel, or None if it can."""
    if not 0 < reel_id <= MAX_ID:
        return f"reel_id must be in [1, 2^63), got {reel_id}"
    return None


def id_column_problem(name: str, ids: Collection[int]) -> str | None:
    """Why a column of ids (reel or user) cannot be stored, or None if every id can."""
    if not len(ids):
        return None
    # A protobuf repeated field becomes an integer array in one C copy; min and max over
    # it cost no Python int per id (a list of ints beyond int64 becomes an object array).
    column = np.asarray(ids)
    if column.dtype.kind in "iu":
        low, high = int(column.min()), int(column.max())
    else:
        low, high = min(ids), max(ids)
    if low > 0 and high <= MAX_ID:
        return None
    bad = next(i for i in ids if not 0 < i <= MAX_ID)
    return f"{name} must be in [1, 2^63); got {bad}"


def reel_ids_problem(reel_ids: Collection[int]) -> str | None:
    """Why a list of reel ids cannot be served in one call, or None if it can."""
    if not len(reel_ids):
        return "reel_ids is empty"
    if len(reel_ids) > MAX_REELS_PER_CALL:
        return f"at most {MAX_REELS_PER_CALL} reel_ids per call, got {len(reel_ids)}"
    bad = [reel_id for reel_id in reel_ids if not 0 < reel_id <= MAX_ID]
    if bad:
        return f"reel_ids must be in [1, 2^63); {len(bad)} are not (first: {bad[0]})"
    return None
