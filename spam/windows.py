"""Vectorised sliding-window and per-entity aggregates over event columns.

Each function takes a key column (any integer type: user ids, IP hashes, pairs) and returns
one value per event, with no Python loop over events: keys are made dense by sorting,
events sorted by (key, time) and windows found with `np.searchsorted`.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import numpy.typing as npt

I64 = npt.NDArray[np.int64]
F64 = npt.NDArray[np.float64]
BoolArray = npt.NDArray[np.bool_]


# numpy 2.4's np.unique of integers goes through a hash table that is two orders of
# magnitude slower than sorting on this machine (26 s vs 0.4 s for 5M int64): sort instead.


def unique_sorted(values: npt.NDArray[np.generic]) -> npt.NDArray[np.generic]:
    """The distinct values, ascending."""
    ordered = np.sort(values, kind="stable")
    if len(ordered) == 0:
        return ordered
    return ordered[np.r_[True, ordered[1:] != ordered[:-1]]]


def unique_counts(
    values: npt.NDArray[np.generic],
) -> tuple[npt.NDArray[np.generic], I64]:
    """The distinct values, ascending, and how often each occurs."""
    ordered = np.sort(values, kind="stable")
    if len(ordered) == 0:
        return ordered, np.zeros(0, dtype=np.int64)
    starts = np.flatnonzero(np.r_[True, ordered[1:] != ordered[:-1]])
    return ordered[starts], np.diff(np.r_[starts, len(ordered)]).astype(np.int64)


def member_of(values: npt.NDArray[np.generic], sorted_set: npt.NDArray[np.generic]) -> BoolArray:
    """For each value, whether it is in `sorted_set` (ascending, distinct)."""
    if len(sorted_set) == 0:
        return np.zeros(len(values), dtype=np.bool_)
    where = np.minimum(np.searchsorted(sorted_set, values), len(sorted_set) - 1)
    found: BoolArray = sorted_set[where] == values
    return found


def dense_keys(keys: npt.NDArray[np.generic]) -> tuple[I64, int]:
    """Keys renumbered 0..k-1 (in sorted key order) and k."""
    count = len(keys)
    if count == 0:
        return np.zeros(0, dtype=np.int64), 0
    order = np.argsort(keys, kind="stable")
    ordered = keys[order]
    new = np.r_[True, ordered[1:] != ordered[:-1]]
    dense = np.empty(count, dtype=np.int64)
    dense[order] = np.cumsum(new) - 1
    return dense, int(new.sum())


def pair_keys(first: I64, second: npt.NDArray[Any]) -> I64:
    """One dense key per distinct (first, second) pair of dense keys."""
    second_dense, second_count = dense_keys(second)
    combined = first * max(1, second_count) + second_dense
    return dense_keys(combined)[0]


def trailing_counts(keys: I64, ts_ms: I64, window_ms: int) -> I64:
    """For each event, the events of the same key with time in (t - window, t], itself
    included (ties at t count as well)."""
    count = len(keys)
    if count == 0:
        return np.zeros(0, dtype=np.int64)
    dense, _ = dense_keys(keys)
    base = int(ts_ms.min())
    span = int(ts_ms.max()) - base + window_ms + 1
    composite = dense * span + (ts_ms - base)
    order = np.argsort(composite, kind="stable")
    ordered = composite[order]
    upper = np.searchsorted(ordered, ordered, side="right")
    lower = np.searchsorted(ordered, ordered - window_ms, side="right")
    result = np.empty(count, dtype=np.int64)
    result[order] = upper - lower
    return result


def earlier_count(keys: I64, ts_ms: I64) -> I64:
    """For each event, the events of the same key strictly before it (by time, then
    position): 0 for the first one."""
    count = len(keys)
    if count == 0:
        return np.zeros(0, dtype=np.int64)
    dense, _ = dense_keys(keys)
    order = np.lexsort((np.arange(count), ts_ms, dense))
    sorted_keys = dense[order]
    starts = np.flatnonzero(np.r_[True, sorted_keys[1:] != sorted_keys[:-1]])
    group_start = np.repeat(starts, np.diff(np.r_[starts, count]))
    result = np.empty(count, dtype=np.int64)
    result[order] = np.arange(count) - group_start
    return result


def count_per_key(keys: I64) -> I64:
    """For each event, how many events share its key."""
    dense, size = dense_keys(keys)
    return np.bincount(dense, minlength=size)[dense].astype(np.int64)


def distinct_per_key(keys: I64, values: npt.NDArray[np.generic]) -> I64:
    """For each event, how many distinct `values` its key has among all events."""
    if len(keys) == 0:
        return np.zeros(0, dtype=np.int64)
    dense, size = dense_keys(keys)
    value_dense, value_count = dense_keys(values)
    pairs = unique_sorted(dense * value_count + value_dense)
    per_key = np.bincount(pairs // value_count, minlength=size)
    return per_key[dense].astype(np.int64)


def mean_per_key(keys: I64, values: F64, where: npt.NDArray[np.bool_]) -> F64:
    """For each event, the mean of `values` over its key's events selected by `where`
    (NaN when none is)."""
    dense, size = dense_keys(keys)
    sums = np.bincount(dense, weights=np.where(where, values, 0.0), minlength=size)
    counts = np.bincount(dense, weights=where.astype(np.float64), minlength=size)
    with np.errstate(invalid="ignore", divide="ignore"):
        means = sums / counts
    return means[dense]


def previous_in_key(keys: I64, ts_ms: I64) -> I64:
    """For each event, the position of the previous event (by time) of the same key, or -1."""
    count = len(keys)
    if count == 0:
        return np.zeros(0, dtype=np.int64)
    dense, _ = dense_keys(keys)
    order = np.lexsort((np.arange(count), ts_ms, dense))
    previous_sorted = np.r_[-1, order[:-1]]
    same = np.r_[False, dense[order][1:] == dense[order][:-1]]
    result = np.empty(count, dtype=np.int64)
    result[order] = np.where(same, previous_sorted, -1)
    return result
