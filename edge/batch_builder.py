"""Aggregation of journaled events into one ApplyBatch request per counter shard.

Views are summed per (reel, minute) so a viral reel costs one entry per flush however many
views it gets; likes are coalesced per (user, reel) keeping the latest client timestamp,
which is all the shard's last-writer-wins register needs; (reel, viewer) pairs, grouped by
reel, feed the unique-viewer sketches. Everything is computed column-wise with numpy sorts,
and each request's bytes are written from the columns (`reelstream.packed_fields`): no
Python step per event or per key. Pure code.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from edge.event_columns import I64, U64, EventColumns
from protos import common_pb2, counter_pb2
from reelstream.packed_fields import length_delimited, packed
from reelstream.ring import ConsistentHashRing

MINUTE_MS = 60_000
Index = npt.NDArray[np.intp]
_LOW32 = np.uint64(0xFFFF_FFFF)
_SHIFT32 = np.uint64(32)


class ViewDeltas:
    """Views per reel of one batch, for read-your-writes.

    Kept as columns; the dict is built at the first lookup, since most batches are
    acknowledged before any read asks about them.
    """

    def __init__(self, reel_ids: U64, counts: I64) -> None:
        self._reel_ids = reel_ids
        self._counts = counts
        self._by_reel: dict[int, int] | None = None
        self.total = int(counts.sum())

    @classmethod
    def of_entries(cls, reel_ids: U64, counts: I64) -> ViewDeltas:
        """Sums entries that may repeat a reel (one per minute, in any order)."""
        order = np.argsort(reel_ids, kind="stable")
        return cls.of_sorted(reel_ids[order], counts[order])

    @classmethod
    def of_sorted(cls, reel_ids: U64, counts: I64) -> ViewDeltas:
        """Sums entries sorted by reel."""
        if not len(reel_ids):
            return cls(reel_ids, counts)
        starts = _starts(reel_ids[1:] != reel_ids[:-1])
        return cls(reel_ids[starts], np.add.reduceat(counts, starts))

    def get(self, reel_id: int, default: int = 0) -> int:
        if self._by_reel is None:
            self._by_reel = dict(zip(self._reel_ids.tolist(), self._counts.tolist(), strict=True))
        return self._by_reel.get(reel_id, default)


@dataclass
class ShardBatch:
    """Aggregated content for one shard, before it gets its sequence number."""

    events: int
    view_reel_ids: U64
    view_minutes: I64
    view_counts: I64
    viewer_reel_ids: U64
    viewer_user_ids: U64
    like_reel_ids: U64
    like_user_ids: U64
    like_ts_ms: I64
    like_values: npt.NDArray[np.bool_]
    view_deltas: ViewDeltas

    def payload(self, batch_id: counter_pb2.BatchId) -> bytes:
        """The serialized ApplyBatchRequest (the bytes protobuf's deterministic
        serialization gives, field by field in number order)."""
        return b"".join(
            [
                length_delimited(1, batch_id.SerializeToString(deterministic=True)),
                packed(2, self.view_reel_ids),
                packed(3, self.view_minutes),
                packed(4, self.view_counts),
                packed(5, self.like_reel_ids),
                packed(6, self.like_user_ids),
                packed(7, self.like_ts_ms),
                packed(8, self.like_values),
                packed(9, self.viewer_reel_ids),
                packed(10, self.viewer_user_ids),
            ]
        )


def _starts(changed: npt.NDArray[np.bool_]) -> Index:
    """Group start indices, given where each row differs from the previous one."""
    return np.flatnonzero(np.concatenate(([True], changed)))


def _shard_slices(shards: npt.NDArray[np.int64], shard_ids: tuple[int, ...]) -> dict[int, Index]:
    """Per shard, the rows it owns, in their order."""
    order = np.argsort(shards, kind="stable")
    ordered = shards[order]
    lows = np.searchsorted(ordered, shard_ids, side="left").tolist()
    highs = np.searchsorted(ordered, shard_ids, side="right").tolist()
    return {s: order[lo:hi] for s, lo, hi in zip(shard_ids, lows, highs, strict=True)}


@dataclass
class _Views:
    """Views of a cut, by reel (sorted) then minute, and their (reel, viewer) pairs.

    Pairs are not made distinct here: the view rule already refused a viewer's repeated
    views of a reel within its window, and the shard's viewer sets are idempotent.
    """

    reels: U64
    group_reel: Index
    group_minute: I64
    group_count: I64
    pair_reel: Index
    pair_user: U64


def _aggregate_views(reel_ids: U64, minutes: I64, user_ids: U64) -> _Views:
    order = np.argsort(reel_ids)
    reel_ids, minutes, user_ids = reel_ids[order], minutes[order], user_ids[order]
    new_reel = reel_ids[1:] != reel_ids[:-1]
    reels = reel_ids[_starts(new_reel)]
    rank = np.concatenate(([0], np.cumsum(new_reel))).astype(np.intp)
    lowest = int(minutes.min())
    span = int(minutes.max()) - lowest
    if not 0 <= lowest <= lowest + span <= int(_LOW32):
        raise ValueError(f"view minutes {lowest}..{lowest + span} do not fit uint32")
    if span:
        # Several minutes: order each reel's views by minute, a stable sort of nearly sorted
        # keys. The span fits 32 bits, as minutes do in the request (uint32).
        keys = (rank.astype(np.uint64) << _SHIFT32) | (minutes - lowest).astype(np.uint64)
        by_minute = np.argsort(keys, kind="stable")
        rank, minutes, user_ids = rank[by_minute], minutes[by_minute], user_ids[by_minute]
        groups = _starts((rank[1:] != rank[:-1]) | (minutes[1:] != minutes[:-1]))
    else:
        groups = _starts(new_reel)
    counts = np.diff(np.append(groups, len(rank)))
    return _Views(reels, rank[groups], minutes[groups], counts, rank, user_ids)


@dataclass
class _Likes:
    """The latest like state per (reel, user) of a cut, with each one's shard."""

    shards: npt.NDArray[np.int64]
    reel_ids: U64
    user_ids: U64
    ts_ms: I64
    liked: npt.NDArray[np.bool_]
    events_per_shard: npt.NDArray[np.intp]


def _coalesce_likes(
    ring: ConsistentHashRing, reel_ids: U64, user_ids: U64, ts_ms: I64, liked: npt.NDArray[np.bool_]
) -> _Likes:
    shards = ring.shards_for(reel_ids)
    events_per_shard = np.bincount(shards, minlength=max(ring.shard_ids) + 1)
    # Sorted so the last row of each (reel, user) group is its largest (ts, liked).
    order = np.lexsort((liked, ts_ms, user_ids, reel_ids))
    s_reel, s_user = reel_ids[order], user_ids[order]
    changed = (s_reel[1:] != s_reel[:-1]) | (s_user[1:] != s_user[:-1])
    keep = order[np.append(np.flatnonzero(changed), len(order) - 1)]
    return _Likes(
        shards[keep], reel_ids[keep], user_ids[keep], ts_ms[keep], liked[keep], events_per_shard
    )


def build_shard_batches(columns: EventColumns, ring: ConsistentHashRing) -> dict[int, ShardBatch]:
    """Aggregates accepted events per shard (shards without events get no batch)."""
    is_view = columns.kinds == common_pb2.EVENT_KIND_VIEW
    is_like = ~is_view
    empty_u64, empty_i64 = np.zeros(0, dtype=np.uint64), np.zeros(0, dtype=np.int64)
    views = None
    if is_view.any():
        views = _aggregate_views(
            columns.reel_ids[is_view],
            columns.ts_ms[is_view] // MINUTE_MS,
            columns.user_ids[is_view],
        )
        reel_shards = ring.shards_for(views.reels)
        group_rows = _shard_slices(reel_shards[views.group_reel], ring.shard_ids)
        pair_rows = _shard_slices(reel_shards[views.pair_reel], ring.shard_ids)
    likes = None
    if is_like.any():
        likes = _coalesce_likes(
            ring,
            columns.reel_ids[is_like],
            columns.user_ids[is_like],
            columns.ts_ms[is_like],
            columns.kinds[is_like] == common_pb2.EVENT_KIND_LIKE,
        )
        like_rows = _shard_slices(likes.shards, ring.shard_ids)
    batches: dict[int, ShardBatch] = {}
    for shard in ring.shard_ids:
        if views is not None and len(group_rows[shard]):
            rows, pairs = group_rows[shard], pair_rows[shard]
            view_reels = views.reels[views.group_reel[rows]]
            view_minutes, view_counts = views.group_minute[rows], views.group_count[rows]
            viewer_reels = views.reels[views.pair_reel[pairs]]
            viewer_users = views.pair_user[pairs]
        else:
            view_reels, view_minutes, view_counts = empty_u64, empty_i64, empty_i64
            viewer_reels, viewer_users = empty_u64, empty_u64
        like_events = 0
        if likes is not None and len(like_rows[shard]):
            rows = like_rows[shard]
            like_events = int(likes.events_per_shard[shard])
            like_columns = (likes.reel_ids[rows], likes.user_ids[rows], likes.ts_ms[rows])
            like_values = likes.liked[rows]
        else:
            like_columns, like_values = (empty_u64, empty_u64, empty_i64), np.zeros(0, np.bool_)
        events = int(view_counts.sum()) + like_events
        if not events:
            continue
        batches[shard] = ShardBatch(
            events,
            view_reels,
            view_minutes,
            view_counts,
            viewer_reels,
            viewer_users,
            *like_columns,
            like_values,
            ViewDeltas.of_sorted(view_reels, view_counts),
        )
    return batches
