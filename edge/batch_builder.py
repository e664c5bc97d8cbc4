"""Aggregation of journaled events into one ApplyBatch request per counter shard.

Views are summed per (reel, minute) so a viral reel costs one entry per flush however many
views it gets; likes are coalesced per (user, reel) keeping the latest client timestamp,
which is all the shard's last-writer-wins register needs; distinct (reel, viewer) pairs feed
the unique-viewer sketches. Everything is computed column-wise with numpy sorts; Python
only walks the distinct keys when it builds the requests. Pure code.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
import numpy.typing as npt

from edge.event_columns import I64, U64, EventColumns
from protos import common_pb2, counter_pb2
from reelstream.ring import ConsistentHashRing

MINUTE_MS = 60_000


@dataclass
class ShardBatch:
    """Aggregated content for one shard, before it gets its sequence number."""

    request: counter_pb2.ApplyBatchRequest
    view_deltas: Counter[int] = field(default_factory=Counter)
    events: int = 0


def _group_starts(*sorted_keys: npt.NDArray[np.generic]) -> npt.NDArray[np.intp]:
    """Indices where any of the (already sorted) key columns changes value."""
    size = len(sorted_keys[0])
    if size == 0:
        return np.empty(0, dtype=np.intp)
    changed = np.zeros(size, dtype=np.bool_)
    changed[0] = True
    for key in sorted_keys:
        changed[1:] |= key[1:] != key[:-1]
    return np.flatnonzero(changed)


def _shard_ranges(sorted_shards: I64, shard_ids: Sequence[int]) -> dict[int, tuple[int, int]]:
    return {
        shard: (
            int(np.searchsorted(sorted_shards, shard, side="left")),
            int(np.searchsorted(sorted_shards, shard, side="right")),
        )
        for shard in shard_ids
    }


def build_shard_batches(columns: EventColumns, ring: ConsistentHashRing) -> dict[int, ShardBatch]:
    """Aggregates accepted events per shard (shards without events get no batch)."""
    shard = ring.shards_for(columns.reel_ids)
    events_per_shard = np.bincount(shard, minlength=max(ring.shard_ids) + 1)
    batches = {
        s: ShardBatch(counter_pb2.ApplyBatchRequest(), Counter(), int(events_per_shard[s]))
        for s in ring.shard_ids
        if events_per_shard[s]
    }
    is_view = columns.kinds == common_pb2.EVENT_KIND_VIEW
    _add_views(
        batches,
        ring,
        shard[is_view],
        columns.reel_ids[is_view],
        columns.ts_ms[is_view] // MINUTE_MS,
        columns.user_ids[is_view],
    )
    is_like = ~is_view
    _add_likes(
        batches,
        ring,
        shard[is_like],
        columns.reel_ids[is_like],
        columns.user_ids[is_like],
        columns.ts_ms[is_like],
        columns.kinds[is_like] == common_pb2.EVENT_KIND_LIKE,
    )
    return batches


def _add_views(
    batches: dict[int, ShardBatch],
    ring: ConsistentHashRing,
    shard: I64,
    reel: U64,
    minute: I64,
    user: U64,
) -> None:
    order = np.lexsort((minute, reel, shard))
    s_shard, s_reel, s_minute = shard[order], reel[order], minute[order]
    starts = _group_starts(s_shard, s_reel, s_minute)
    counts = np.diff(np.append(starts, len(order)))
    g_shard, g_reel, g_minute = s_shard[starts], s_reel[starts], s_minute[starts]
    for s, (lo, hi) in _shard_ranges(g_shard, ring.shard_ids).items():
        if lo == hi:
            continue
        request = batches[s].request
        reels = g_reel[lo:hi]
        request.view_reel_ids.extend(reels.tolist())
        request.view_minutes.extend(g_minute[lo:hi].tolist())
        request.view_counts.extend(counts[lo:hi].tolist())
        reel_starts = _group_starts(reels)
        sums = np.add.reduceat(counts[lo:hi], reel_starts)
        batches[s].view_deltas.update(
            dict(zip(reels[reel_starts].tolist(), sums.tolist(), strict=True))
        )
    # Distinct (reel, viewer) pairs, sorted by reel as the shard expects.
    order = np.lexsort((user, reel, shard))
    p_shard, p_reel, p_user = shard[order], reel[order], user[order]
    firsts = _group_starts(p_shard, p_reel, p_user)
    p_shard, p_reel, p_user = p_shard[firsts], p_reel[firsts], p_user[firsts]
    for s, (lo, hi) in _shard_ranges(p_shard, ring.shard_ids).items():
        if lo < hi:
            batches[s].request.viewer_reel_ids.extend(p_reel[lo:hi].tolist())
            batches[s].request.viewer_user_ids.extend(p_user[lo:hi].tolist())


def _add_likes(
    batches: dict[int, ShardBatch],
    ring: ConsistentHashRing,
    shard: I64,
    reel: U64,
    user: U64,
    ts_ms: I64,
    liked: npt.NDArray[np.bool_],
) -> None:
    if len(shard) == 0:
        return
    # Sorted so the last row of each (shard, reel, user) group is its largest (ts, liked).
    order = np.lexsort((liked, ts_ms, user, reel, shard))
    s_shard, s_reel, s_user = shard[order], reel[order], user[order]
    starts = _group_starts(s_shard, s_reel, s_user)
    lasts = np.append(starts[1:], len(order)) - 1
    keep = order[lasts]
    g_shard = shard[keep]
    for s, (lo, hi) in _shard_ranges(g_shard, ring.shard_ids).items():
        if lo == hi:
            continue
        rows = keep[lo:hi]
        request = batches[s].request
        request.like_reel_ids.extend(reel[rows].tolist())
        request.like_user_ids.extend(user[rows].tolist())
        request.like_ts_ms.extend(ts_ms[rows].tolist())
        request.like_values.extend(liked[rows].tolist())
