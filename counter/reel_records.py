"""A reel's values as read from Cassandra, and the changes replayed batches make to a reel
not read yet (counter/shard_state.py merges the two when the reel is read)."""

from __future__ import annotations

from dataclasses import dataclass, field

from counter.bucket_columns import BucketKey
from counter.unique_viewers import UniqueViewers


@dataclass(slots=True)
class ReelRecord:
    """A reel's values as stored in Cassandra: what `ShardState.load` puts into memory."""

    views: int = 0
    likes: int = 0
    views_removed: int = 0
    likes_removed: int = 0
    like_states: dict[int, tuple[int, bool]] = field(default_factory=dict)
    # (views, likes) per bucket read.
    buckets: dict[BucketKey, tuple[int, int]] = field(default_factory=dict)
    viewers: UniqueViewers = field(default_factory=UniqueViewers)


@dataclass(slots=True)
class ReelDelta:
    """What replayed batches changed in a reel whose stored row was not read yet: sums
    for views, buckets, corrections and viewers, and the like events themselves (a like's
    effect depends on the stored register of its user)."""

    views: int = 0
    likes: int = 0
    views_removed: int = 0
    likes_removed: int = 0
    view_buckets: dict[BucketKey, int] = field(default_factory=dict)
    like_events: list[tuple[int, int, bool]] = field(default_factory=list)
    viewers: list[int] = field(default_factory=list)
