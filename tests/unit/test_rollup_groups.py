"""How roll-up writes are grouped into Cassandra batches (counter/store.py)."""

from __future__ import annotations

from counter.store import ReelRollup, group_rollups


def rollup(reel_id: int, likes: int = 0, sketch_bytes: int = 0) -> ReelRollup:
    return ReelRollup(
        reel_id=reel_id,
        totals=(1, 0, 0, 0),
        likes=[(user, 5, True) for user in range(likes)],
        buckets=[("minute", 0, 1, 0), ("hour", 0, 1, 0), ("day", 0, 1, 0)],
        viewers=b"x" * sketch_bytes if sketch_bytes else None,
    )


def test_cold_reels_fill_batches_up_to_the_reel_limit_in_order() -> None:
    groups = group_rollups([rollup(i) for i in range(70)], max_reels=32)
    assert [len(group) for group in groups] == [32, 32, 6]
    assert [r.reel_id for group in groups for r in group] == list(range(70))


def test_a_reel_with_many_likes_goes_alone_and_its_neighbours_keep_batching() -> None:
    reels = [rollup(0), rollup(1, likes=2_000), rollup(2), rollup(3)]
    groups = group_rollups(reels, max_reels=32, max_rows=512)
    assert [[r.reel_id for r in group] for group in groups] == [[0], [1], [2, 3]]


def test_large_sketches_split_batches_by_bytes() -> None:
    reels = [rollup(i, sketch_bytes=100_000) for i in range(5)]
    groups = group_rollups(reels, max_reels=32, max_bytes=256 << 10)
    assert [len(group) for group in groups] == [2, 2, 1]


def test_one_reel_per_write_restores_a_request_per_reel() -> None:
    assert [len(g) for g in group_rollups([rollup(i) for i in range(3)], max_reels=1)] == [1, 1, 1]


def test_no_rollups_no_batches() -> None:
    assert group_rollups([], max_reels=32) == []
