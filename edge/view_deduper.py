"""The view rule's memory: a (viewer, reel) pair counts one view per window.

A set-associative table in one numpy array holding, per slot, a 64-bit fingerprint of the
pair and the time its window ends, so a whole batch is checked and recorded with a few
vectorised operations instead of one dict step per view. A pair lives in one set of
`ways` slots chosen by its fingerprint; a new pair takes the slot of its set whose window
ends first. The table is bounded: under pressure a pair may be forgotten before its window
ends, and its viewer's next view of the reel then counts again, as with any bounded dedupe.
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

from reelstream.hashing import mix64_array

U64 = npt.NDArray[np.uint64]
Mask = npt.NDArray[np.bool_]
WAYS = 4


def pair_fingerprints(user_ids: U64, reel_ids: U64) -> U64:
    """A 64-bit hash per (user, reel) pair; distinct pairs collide with odds ~2^-64."""
    return mix64_array(mix64_array(user_ids) ^ reel_ids.astype(np.uint64, copy=False))


class ViewDeduper:
    """Remembers (viewer, reel) pairs for `window_ms` in at most `max_entries` slots."""

    def __init__(self, window_ms: int, max_entries: int) -> None:
        if max_entries < 1:
            raise ValueError("max_entries must be >= 1")
        self._window_ms = window_ms
        ways = min(WAYS, max_entries)
        sets = min(max_entries // ways, 1 << 32)
        self._sets = np.uint64(sets)
        self._ways = ways
        # Per set, its slots' fingerprints then the times their windows end (ms; 0: free):
        # with four ways a set is one 64-byte cache line, read with one gather per view.
        self._table = np.zeros((sets, 2 * ways), dtype=np.uint64)
        self._flat = self._table.reshape(-1)

    def __len__(self) -> int:
        """Slots holding a pair (some windows may have ended)."""
        return int(np.count_nonzero(self._table[:, self._ways :]))

    @property
    def capacity(self) -> int:
        return self._table.shape[0] * self._ways

    def first_in_window(self, user_ids: U64, reel_ids: U64, now_ms: int) -> Mask:
        """For each view, whether it is its pair's first in the window; records those.

        Within one batch only the first view of a pair can be first.
        """
        count = len(user_ids)
        if self._window_ms <= 0 or count == 0:
            return np.ones(count, dtype=np.bool_)
        fingerprints = pair_fingerprints(user_ids, reel_ids)
        # Sorted by fingerprint (stable), hence by set too: a pair's repeats follow its
        # first view, and the new pairs of one set are adjacent.
        order = np.argsort(fingerprints, kind="stable")
        fingerprints = fingerprints[order]
        sets = self._set_of(fingerprints)
        rows = np.take(self._table, sets, axis=0)
        keys, ends = rows[:, : self._ways], rows[:, self._ways :]
        seen = ((keys == fingerprints[:, None]) & (ends > np.uint64(now_ms))).any(axis=1)
        seen[1:] |= fingerprints[1:] == fingerprints[:-1]
        new = ~seen
        self._record(fingerprints[new], sets[new], ends[new], now_ms + self._window_ms)
        first = np.empty(count, dtype=np.bool_)
        first[order] = new
        return first

    def _set_of(self, fingerprints: U64) -> npt.NDArray[np.intp]:
        """A pair's set: its fingerprint's top 32 bits scaled to the set count, which
        keeps the sets in fingerprint order."""
        scaled = ((fingerprints >> np.uint64(32)) * self._sets) >> np.uint64(32)
        return scaled.astype(np.intp)

    def _record(
        self, fingerprints: U64, sets: npt.NDArray[np.intp], ends: U64, end_ms: int
    ) -> None:
        """Puts each new pair (sorted by set) in the slot of its set that ends first.

        New pairs of one batch sharing a set take its slots in order of their window ends;
        beyond `ways` new pairs in one set, the extra ones are not remembered.
        """
        count = len(sets)
        if count == 0:
            return
        ways = np.argmin(ends, axis=1)
        # Pairs after the first of their set in this batch: rare, about count^2 / (2 sets)
        # of them, so only they pay for a sort of their set's slots.
        crowded = np.flatnonzero(sets[1:] == sets[:-1]) + 1
        if len(crowded):
            index = np.arange(len(crowded))
            run_start = np.concatenate(([True], crowded[1:] != crowded[:-1] + 1))
            rank = index - np.maximum.accumulate(np.where(run_start, index, 0)) + 1
            placed = np.ones(count, dtype=np.bool_)
            placed[crowded] = rank < self._ways
            fits = rank < self._ways
            crowded, rank = crowded[fits], rank[fits]
            by_end = np.argsort(ends[crowded], axis=1, kind="stable")
            ways[crowded] = by_end[np.arange(len(crowded)), rank]
            fingerprints, sets, ways = fingerprints[placed], sets[placed], ways[placed]
        slots = sets * (2 * self._ways) + ways
        self._flat[slots] = fingerprints
        self._flat[slots + self._ways] = end_ms

    def forget(self, user_ids: U64, reel_ids: U64) -> None:
        """Undoes `first_in_window` for views that were finally not journaled."""
        if len(user_ids) == 0:
            return
        fingerprints = pair_fingerprints(user_ids, reel_ids)
        sets = self._set_of(fingerprints)
        keys = np.take(self._table, sets, axis=0)[:, : self._ways]
        rows, ways = np.nonzero(keys == fingerprints[:, None])
        self._flat[sets[rows] * (2 * self._ways) + self._ways + ways] = 0
