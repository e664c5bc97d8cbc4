"""A shard's time buckets as columns: one per (width, bucket start), indexed by reel slot.

Applying a batch adds every entry's count to three buckets (its minute, hour and day). As
dict entries per reel that was three dict updates and a dirty-mark check per entry, about
half of a shard's apply cost; as columns it is a few vectorised adds per minute the batch
spans (docs/benchmarks.md, session 16).

Per slot, a column holds views, likes and two flags:
- PRESENT: the reel holds this bucket in memory (events added to it, or read from
  Cassandra). A bucket older than the horizons that is not present may exist only in
  Cassandra (retired), so a late event must read it back before adding to it
  (`ShardState.missing_old_buckets`).
- DIRTY: changed since a snapshot last copied it.

A column leaves memory whole: once it is older than its width's horizon and none of its
slots is dirty (every change was copied by a snapshot, which completed before `retire` is
called), Cassandra serves it.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

PRESENT = np.uint8(1)
DIRTY = np.uint8(2)
_PRESENT_AND_DIRTY = np.uint8(3)

BucketKey = tuple[str, int]
"""(width name, bucket start ms)."""
BucketKeys = tuple[BucketKey, ...]
BucketHorizons = dict[str, int]
"""Per width, the bucket start (ms) below which a clean bucket is kept only in Cassandra."""

Slots = npt.NDArray[np.int64]
Counts = npt.NDArray[np.int64]


@dataclass(frozen=True, slots=True)
class DirtyBuckets:
    """Changed buckets of some slots as columns, row i belonging to `owners[i]` (an index
    into the slots asked for; rows grouped by it): a snapshot copy's buckets."""

    width_names: tuple[str, ...]
    owners: npt.NDArray[np.intp]
    width_codes: npt.NDArray[np.uint8]
    """Index of each row's width in `width_names`."""
    starts: Counts
    views: Counts
    likes: Counts

    @classmethod
    def empty(cls) -> DirtyBuckets:
        none = np.zeros(0, dtype=np.int64)
        return cls((), none.astype(np.intp), none.astype(np.uint8), none, none, none)

    def tuples(self, first: int = 0, stop: int | None = None) -> list[tuple[str, int, int, int]]:
        """(width, start, views, likes) of rows first:stop."""
        names = self.width_names
        rows = slice(first, stop)
        return [
            (names[code], start, views, likes)
            for code, start, views, likes in zip(
                self.width_codes[rows].tolist(),
                self.starts[rows].tolist(),
                self.views[rows].tolist(),
                self.likes[rows].tolist(),
                strict=True,
            )
        ]


class BucketColumn:
    """Views, likes and flags of one bucket for every slot."""

    __slots__ = ("flags", "likes", "views")

    def __init__(self, capacity: int) -> None:
        self.views = np.zeros(capacity, dtype=np.int64)
        self.likes = np.zeros(capacity, dtype=np.int64)
        self.flags = np.zeros(capacity, dtype=np.uint8)

    def grow(self, capacity: int) -> None:
        for name in ("views", "likes", "flags"):
            old = getattr(self, name)
            new = np.zeros(capacity, dtype=old.dtype)
            new[: len(old)] = old
            setattr(self, name, new)


class BucketColumns:
    """Every bucket a shard holds in memory, one column per (width, start)."""

    def __init__(self, capacity: int) -> None:
        self.capacity = capacity
        self.columns: dict[BucketKey, BucketColumn] = {}

    def _column(self, key: BucketKey) -> BucketColumn:
        column = self.columns.get(key)
        if column is None:
            column = self.columns[key] = BucketColumn(self.capacity)
        return column

    def grow(self, capacity: int) -> None:
        """Makes room for slots up to `capacity` - 1 (new slots hold nothing)."""
        for column in self.columns.values():
            column.grow(capacity)
        self.capacity = capacity

    def add_views(self, keys: BucketKeys, slots: Slots, counts: npt.NDArray[np.int64]) -> None:
        """Adds `counts[i]` views to bucket `keys` of `slots[i]` (slots may repeat)."""
        for key in keys:
            column = self._column(key)
            np.add.at(column.views, slots, counts)
            column.flags[slots] |= _PRESENT_AND_DIRTY

    def add(self, slot: int, keys: BucketKeys, views: int, likes: int) -> None:
        """Adds to one slot's buckets `keys` (likes, replayed deltas: the rare paths)."""
        for key in keys:
            column = self._column(key)
            column.views[slot] += views
            column.likes[slot] += likes
            column.flags[slot] |= _PRESENT_AND_DIRTY

    def put(self, slot: int, key: BucketKey, views: int, likes: int) -> None:
        """Holds a bucket with these values (read from Cassandra); its dirty mark stays."""
        column = self._column(key)
        column.views[slot] = views
        column.likes[slot] = likes
        column.flags[slot] |= PRESENT

    def is_present(self, slot: int, key: BucketKey) -> bool:
        column = self.columns.get(key)
        return column is not None and bool(column.flags[slot] & PRESENT)

    def get(self, slot: int, key: BucketKey) -> tuple[int, int] | None:
        """(views, likes) of a present bucket, else None."""
        if not self.is_present(slot, key):
            return None
        column = self.columns[key]
        return int(column.views[slot]), int(column.likes[slot])

    def held(self, slot: int) -> list[BucketKey]:
        """The keys of the slot's present buckets, oldest first per width."""
        return sorted(key for key, column in self.columns.items() if column.flags[slot] & PRESENT)

    def rows(self, slot: int, width: str, from_ms: int, to_ms: int) -> list[tuple[int, int, int]]:
        """(start ms, views, likes) of the slot's present `width` buckets in [from_ms, to_ms)."""
        rows = [
            (start, int(column.views[slot]), int(column.likes[slot]))
            for (column_width, start), column in self.columns.items()
            if column_width == width and from_ms <= start < to_ms and column.flags[slot] & PRESENT
        ]
        rows.sort()
        return rows

    def take_dirty(self, slot: int) -> list[tuple[str, int, int, int]]:
        """(width, start, views, likes) of the slot's dirty buckets, whose marks it clears."""
        return self.take_dirty_rows(np.array([slot], dtype=np.int64)).tuples()

    def take_dirty_rows(self, slots: Slots) -> DirtyBuckets:
        """The dirty buckets of `slots` (distinct) as columns, grouped by slot, and their
        marks cleared: a few array operations per column for all of them, not one step
        per column and slot, and no Python object per bucket."""
        parts: list[tuple[npt.NDArray[np.intp], int, int, Counts, Counts]] = []
        widths: dict[str, int] = {}
        for (width, start), column in self.columns.items():
            hits = np.flatnonzero(column.flags[slots] & DIRTY)
            if not len(hits):
                continue
            hit_slots = slots[hits]
            column.flags[hit_slots] &= PRESENT
            code = widths.setdefault(width, len(widths))
            parts.append((hits, code, start, column.views[hit_slots], column.likes[hit_slots]))
        if not parts:
            return DirtyBuckets.empty()
        owners = np.concatenate([hits for hits, *_ in parts])
        # Stable: a slot's rows keep the columns' order.
        order = np.argsort(owners, kind="stable")
        return DirtyBuckets(
            tuple(widths),
            owners[order],
            np.concatenate([np.full(len(hits), code, np.uint8) for hits, code, *_ in parts])[order],
            np.concatenate([np.full(len(hits), start, np.int64) for hits, _, start, *_ in parts])[
                order
            ],
            np.concatenate([views for *_, views, _ in parts])[order],
            np.concatenate([likes for *_, likes in parts])[order],
        )

    def clear(self, slots: Slots) -> None:
        """Forgets everything of `slots` (their reels left memory; the slots are reused)."""
        for column in self.columns.values():
            column.views[slots] = 0
            column.likes[slots] = 0
            column.flags[slots] = 0

    def retire(self, horizons: BucketHorizons) -> int:
        """Drops whole columns older than their width's horizon that no slot has dirty;
        returns how many reels' buckets left memory."""
        retired = 0
        for key in [key for key in self.columns if key[1] < horizons.get(key[0], key[1])]:
            flags = self.columns[key].flags
            if not (flags & DIRTY).any():
                retired += int(np.count_nonzero(flags))
                del self.columns[key]
        return retired
