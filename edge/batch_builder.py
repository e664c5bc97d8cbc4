"""Aggregation of journaled events into one ApplyBatch request per counter shard.

Views are summed per (reel, minute) so a viral reel costs one entry per flush however many
views it gets; likes are coalesced per (user, reel) keeping the latest client timestamp,
which is all the shard's last-writer-wins register needs. Pure code.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field

from protos import common_pb2, counter_pb2
from reelstream.ring import ConsistentHashRing

MINUTE_MS = 60_000


@dataclass
class ShardBatch:
    """Aggregated content for one shard, before it gets its sequence number."""

    request: counter_pb2.ApplyBatchRequest
    view_deltas: Counter[int] = field(default_factory=Counter)
    events: int = 0


def build_shard_batches(
    entries: Iterable[common_pb2.EventBatch], ring: ConsistentHashRing
) -> dict[int, ShardBatch]:
    """Aggregates accepted events per shard."""
    views: dict[int, Counter[tuple[int, int]]] = {}
    likes: dict[int, dict[tuple[int, int], tuple[int, bool]]] = {}
    viewers: dict[int, set[tuple[int, int]]] = {}
    events: Counter[int] = Counter()
    shard_of: dict[int, int] = {}
    for entry in entries:
        for reel_id, user_id, kind, ts_ms in zip(
            entry.reel_ids, entry.user_ids, entry.kinds, entry.client_ts_ms, strict=True
        ):
            shard = shard_of.get(reel_id)
            if shard is None:
                shard = shard_of[reel_id] = ring.shard_for(reel_id)
            events[shard] += 1
            if kind == common_pb2.EVENT_KIND_VIEW:
                views.setdefault(shard, Counter())[(reel_id, ts_ms // MINUTE_MS)] += 1
                viewers.setdefault(shard, set()).add((reel_id, user_id))
            else:
                value = (ts_ms, kind == common_pb2.EVENT_KIND_LIKE)
                registers = likes.setdefault(shard, {})
                key = (reel_id, user_id)
                previous = registers.get(key)
                if previous is None or value > previous:
                    registers[key] = value
    batches: dict[int, ShardBatch] = {}
    for shard in events:
        request = counter_pb2.ApplyBatchRequest()
        deltas: Counter[int] = Counter()
        for (reel_id, minute), count in sorted(views.get(shard, {}).items()):
            request.view_reel_ids.append(reel_id)
            request.view_minutes.append(minute)
            request.view_counts.append(count)
            deltas[reel_id] += count
        for (reel_id, user_id), (ts_ms, liked) in sorted(likes.get(shard, {}).items()):
            request.like_reel_ids.append(reel_id)
            request.like_user_ids.append(user_id)
            request.like_ts_ms.append(ts_ms)
            request.like_values.append(liked)
        for reel_id, user_id in sorted(viewers.get(shard, set())):
            request.viewer_reel_ids.append(reel_id)
            request.viewer_user_ids.append(user_id)
        batches[shard] = ShardBatch(request, deltas, events[shard])
    return batches


def count_views(entry: common_pb2.EventBatch) -> Counter[int]:
    """Views per reel in one journal entry (for read-your-writes before the cut)."""
    counts: Counter[int] = Counter()
    for reel_id, kind in zip(entry.reel_ids, entry.kinds, strict=True):
        if kind == common_pb2.EVENT_KIND_VIEW:
            counts[reel_id] += 1
    return counts
