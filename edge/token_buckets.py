"""Token buckets per key, charged a whole batch of keys at a time (numpy), bounded LRU.

Semantics are those of taking one token per event, in order, at the batch's time: a key's
bucket refills at `rate_per_s` up to `burst` by the time since its last take, a take with
at least one token spends it, a refused take spends nothing; every take (allowed or not)
makes the key the most recently used, and beyond `max_keys` the least recently used key is
forgotten (it comes back with a full bucket). `take_batch` gives exactly the answers of
`take` called once per key in order:

- all of a batch's takes happen at one time, so a key with `c` takes in the batch refills
  once, to `t`, and its first `min(c, floor(t))` takes are allowed (subtracting 1 from a
  float below 2**53 is exact, so this equals spending one token at a time);
- the batch's keys end most recently used in the order of their last take;
- when new keys push the number of keys beyond `max_keys`, the per-event order forgets the
  oldest keys the batch does not touch before its new keys arrive. When none of the
  `evicted` oldest keys appears in the batch, that is exactly "forget the `evicted` oldest
  keys"; otherwise (a batch touching the very oldest keys while over the bound, or with
  more distinct keys than the bound) the batch is applied one take at a time.

State lives in numpy arrays indexed by slot. Keys find their slot through two sorted
arrays searched with `np.searchsorted`: a small one that takes the new keys and, when it
has grown, is merged into the large one (a Python dict of a million keys cost ~0.3 us per
lookup, most of the screen's time). An index entry whose slot was freed or now holds
another key is stale: it is ignored, dropped when the key comes back, and at the merge. Recency is a
sequence number per slot plus an append-only log of (slot, sequence) in touch order; a log
entry is stale once its slot was touched again or freed, and the log is compacted when it
fills, so the oldest live keys are found from its head without sorting all keys.
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

U64 = npt.NDArray[np.uint64]
I64 = npt.NDArray[np.int64]
BoolArray = npt.NDArray[np.bool_]

_FREE = -1
"""Sequence number of a slot that holds no key."""
_HELD = -2
"""Sequence number of a slot given to a key and not touched yet."""


class TokenBuckets:
    """One token bucket per key, refilled at `rate_per_s` up to `burst`; bounded LRU."""

    def __init__(self, rate_per_s: float, burst: float, max_keys: int) -> None:
        if max_keys < 1:
            raise ValueError("max_keys must be >= 1")
        self._rate_per_ms = rate_per_s / 1000.0
        self._burst = float(burst)
        self._max_keys = max_keys
        self._size = 0
        self._main_keys = np.zeros(0, dtype=np.uint64)
        self._main_slots = np.zeros(0, dtype=np.int64)
        self._recent_keys = np.zeros(0, dtype=np.uint64)
        self._recent_slots = np.zeros(0, dtype=np.int64)
        capacity = 1024
        self._tokens = np.zeros(capacity, dtype=np.float64)
        self._last_ms = np.zeros(capacity, dtype=np.int64)
        self._seq = np.full(capacity, _FREE, dtype=np.int64)
        self._key_of = np.zeros(capacity, dtype=np.uint64)
        self._free = np.arange(capacity - 1, -1, -1, dtype=np.int64)
        """Stack of free slots; the first `_free_count` are free, the last one is next."""
        self._free_count = capacity
        self._next_seq = 0
        self._log_slot = np.zeros(capacity, dtype=np.int64)
        self._log_seq = np.zeros(capacity, dtype=np.int64)
        self._log_head = 0
        self._log_end = 0

    def __len__(self) -> int:
        return self._size

    def take(self, key: int, now_ms: int) -> bool:
        """Takes one token from `key`'s bucket at `now_ms`; False when it has none."""
        slot = int(self._lookup(np.array([key], dtype=np.uint64))[0])
        if slot == _FREE:
            if self._size >= self._max_keys:
                self._evict_oldest(1)
            slot = int(self._new_slots(np.array([key], dtype=np.uint64))[0])
            tokens = self._burst
        else:
            tokens = min(
                self._burst,
                float(self._tokens[slot]) + (now_ms - int(self._last_ms[slot])) * self._rate_per_ms,
            )
        allowed = tokens >= 1.0
        self._tokens[slot] = tokens - 1.0 if allowed else tokens
        self._last_ms[slot] = now_ms
        self._touch(np.array([slot], dtype=np.int64))
        return allowed

    def take_batch(self, keys: U64, now_ms: int) -> BoolArray:
        """One take per element of `keys`, in order, all at `now_ms`: which were allowed."""
        count = len(keys)
        if not count:
            return np.zeros(0, dtype=np.bool_)
        unique, inverse, counts = np.unique(keys, return_inverse=True, return_counts=True)
        inverse = inverse.reshape(-1)
        if len(unique) > self._max_keys:
            return self._take_each(keys, now_ms)
        slots = self._lookup(unique)
        known = slots != _FREE
        new_count = len(unique) - int(known.sum())
        evicted = self._size + new_count - self._max_keys
        if evicted > 0:
            oldest, log_stop = self._oldest(evicted)
            if np.isin(oldest, slots[known]).any():
                # The per-event order would forget some of these keys before the batch
                # touches them again: only one take at a time gives its exact answers.
                return self._take_each(keys, now_ms)
            self._forget(oldest, log_stop)

        # Tokens when the batch arrives (the same float operations as `take`).
        tokens = np.full(len(unique), self._burst, dtype=np.float64)
        old = slots[known]
        tokens[known] = np.minimum(
            self._burst,
            self._tokens[old] + (now_ms - self._last_ms[old]) * self._rate_per_ms,
        )
        allowed_per_key = np.minimum(counts, np.floor(tokens).astype(np.int64))
        if new_count:
            slots[~known] = self._new_slots(unique[~known])
        self._tokens[slots] = tokens - allowed_per_key
        self._last_ms[slots] = now_ms

        # Rank of each take among its key's takes; the first allowed_per_key are allowed.
        order = np.argsort(inverse, kind="stable")
        starts = np.cumsum(counts) - counts
        rank = np.empty(count, dtype=np.int64)
        rank[order] = np.arange(count, dtype=np.int64) - np.repeat(starts, counts)
        allowed: BoolArray = rank < allowed_per_key[inverse]

        # Most recently used: the keys in the order of their last take in the batch.
        last = order[np.cumsum(counts) - 1]
        self._touch(slots[np.argsort(last)])
        return allowed

    def _take_each(self, keys: U64, now_ms: int) -> BoolArray:
        return np.array([self.take(key, now_ms) for key in keys.tolist()], dtype=np.bool_)

    def _new_slots(self, keys: U64) -> I64:
        """Slots for keys not yet held (the caller made room under `max_keys`)."""
        while self._free_count < len(keys):
            self._grow()
        self._free_count -= len(keys)
        slots: I64 = self._free[self._free_count : self._free_count + len(keys)].copy()
        self._key_of[slots] = keys
        self._seq[slots] = _HELD  # until the caller touches them (the index merge checks it)
        self._size += len(keys)
        self._index(keys, slots)
        return slots

    def _lookup(self, keys: U64) -> I64:
        """The slot of each key (sorted, distinct), or _FREE."""
        found = np.full(len(keys), _FREE, dtype=np.int64)
        for index_keys, index_slots in (
            (self._main_keys, self._main_slots),
            (self._recent_keys, self._recent_slots),
        ):
            if not len(index_keys):
                continue
            at = np.minimum(np.searchsorted(index_keys, keys), len(index_keys) - 1)
            slots = index_slots[at]
            hit = (index_keys[at] == keys) & self._holds(slots, keys)
            found[hit] = slots[hit]
        return found

    def _holds(self, slots: I64, keys: U64) -> BoolArray:
        held: BoolArray = (self._seq[slots] != _FREE) & (self._key_of[slots] == keys)
        return held

    def _index(self, keys: U64, slots: I64) -> None:
        """Adds keys (sorted, distinct, none held) to the small index; merges it into the
        large one once it holds more than a sixteenth of it."""
        recent_keys, recent_slots = self._recent_keys, self._recent_slots
        if len(recent_keys):
            at = np.minimum(np.searchsorted(recent_keys, keys), len(recent_keys) - 1)
            stale = at[recent_keys[at] == keys]
            if len(stale):
                recent_keys = np.delete(recent_keys, stale)
                recent_slots = np.delete(recent_slots, stale)
        at = np.searchsorted(recent_keys, keys)
        self._recent_keys = np.insert(recent_keys, at, keys)
        self._recent_slots = np.insert(recent_slots, at, slots)
        if len(self._recent_keys) > max(8192, len(self._main_keys) // 16):
            live = self._holds(self._main_slots, self._main_keys)
            main_keys, main_slots = self._main_keys[live], self._main_slots[live]
            live = self._holds(self._recent_slots, self._recent_keys)
            recent_keys, recent_slots = self._recent_keys[live], self._recent_slots[live]
            at = np.searchsorted(main_keys, recent_keys)
            self._main_keys = np.insert(main_keys, at, recent_keys)
            self._main_slots = np.insert(main_slots, at, recent_slots)
            self._recent_keys = np.zeros(0, dtype=np.uint64)
            self._recent_slots = np.zeros(0, dtype=np.int64)

    def _grow(self) -> None:
        old = len(self._tokens)
        self._tokens = np.concatenate([self._tokens, np.zeros(old, dtype=np.float64)])
        self._last_ms = np.concatenate([self._last_ms, np.zeros(old, dtype=np.int64)])
        self._seq = np.concatenate([self._seq, np.full(old, _FREE, dtype=np.int64)])
        self._key_of = np.concatenate([self._key_of, np.zeros(old, dtype=np.uint64)])
        # The new slots go under the free ones (used after them).
        stack = np.zeros(2 * old, dtype=np.int64)
        stack[:old] = np.arange(2 * old - 1, old - 1, -1, dtype=np.int64)
        stack[old : old + self._free_count] = self._free[: self._free_count]
        self._free = stack
        self._free_count += old

    def _touch(self, slots: I64) -> None:
        """Makes `slots` (oldest first) the most recently used."""
        seqs = np.arange(self._next_seq, self._next_seq + len(slots), dtype=np.int64)
        self._next_seq += len(slots)
        self._seq[slots] = seqs
        if self._log_end + len(slots) > len(self._log_slot):
            self._compact_log(len(slots))
        end = self._log_end + len(slots)
        self._log_slot[self._log_end : end] = slots
        self._log_seq[self._log_end : end] = seqs
        self._log_end = end

    def _compact_log(self, room: int) -> None:
        """Drops stale log entries; grows the log when it stays over half full."""
        live = self._live_log(self._log_head, self._log_end)
        slots = self._log_slot[self._log_head : self._log_end][live]
        seqs = self._log_seq[self._log_head : self._log_end][live]
        capacity = len(self._log_slot)
        if 2 * (len(slots) + room) > capacity:
            capacity = max(2 * capacity, 2 * (len(slots) + room))
            self._log_slot = np.zeros(capacity, dtype=np.int64)
            self._log_seq = np.zeros(capacity, dtype=np.int64)
        self._log_slot[: len(slots)] = slots
        self._log_seq[: len(seqs)] = seqs
        self._log_head, self._log_end = 0, len(slots)

    def _live_log(self, start: int, stop: int) -> BoolArray:
        live: BoolArray = self._seq[self._log_slot[start:stop]] == self._log_seq[start:stop]
        return live

    def _oldest(self, wanted: int) -> tuple[I64, int]:
        """The `wanted` least recently used slots, oldest first, and the log position just
        past the last of them."""
        span = 2 * wanted
        while True:
            stop = min(self._log_end, self._log_head + span)
            live = np.flatnonzero(self._live_log(self._log_head, stop))
            if len(live) >= wanted or stop == self._log_end:
                picked = live[:wanted] + self._log_head
                oldest: I64 = self._log_slot[picked]
                return oldest, int(picked[-1]) + 1
            span *= 2

    def _evict_oldest(self, wanted: int) -> None:
        oldest, log_stop = self._oldest(wanted)
        self._forget(oldest, log_stop)

    def _forget(self, slots: I64, log_stop: int) -> None:
        self._size -= len(slots)
        self._seq[slots] = _FREE
        self._free[self._free_count : self._free_count + len(slots)] = slots
        self._free_count += len(slots)
        self._log_head = log_stop
