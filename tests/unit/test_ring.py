from collections import Counter

from hypothesis import given
from hypothesis import strategies as st

from reelstream.ring import ConsistentHashRing


def test_keys_spread_evenly_over_shards() -> None:
    ring = ConsistentHashRing.of_size(4)
    owners = Counter(ring.shard_for(reel_id) for reel_id in range(1, 40_001))
    assert set(owners) == {0, 1, 2, 3}
    assert max(owners.values()) / min(owners.values()) < 1.35


def test_adding_a_shard_moves_only_its_share_of_keys() -> None:
    before = ConsistentHashRing.of_size(4)
    after = ConsistentHashRing.of_size(5)
    keys = range(1, 20_001)
    moved = [k for k in keys if before.shard_for(k) != after.shard_for(k)]
    assert all(after.shard_for(k) == 4 for k in moved)
    assert 0.12 < len(moved) / len(keys) < 0.28


@given(st.integers(min_value=1, max_value=2**63 - 1))
def test_every_ring_built_from_the_same_size_agrees(reel_id: int) -> None:
    assert ConsistentHashRing.of_size(3).shard_for(reel_id) == ConsistentHashRing.of_size(
        3
    ).shard_for(reel_id)


@given(st.lists(st.integers(min_value=1, max_value=2**64 - 1), min_size=1, max_size=50))
def test_the_column_lookup_agrees_with_the_scalar_one(reel_ids: list[int]) -> None:
    import numpy as np

    ring = ConsistentHashRing.of_size(5)
    column = ring.shards_for(np.array(reel_ids, dtype=np.uint64))
    assert column.tolist() == [ring.shard_for(r) for r in reel_ids]
