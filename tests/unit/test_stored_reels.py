"""counter/stored_reels.py: the reel gauges are per logical shard (a process hosting several
shards used to show whichever shard set the unlabelled gauge last), and eviction passes that
find nothing clean wait for the next snapshot."""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any, cast

from prometheus_client import REGISTRY

from counter.config import CounterConfig
from counter.shard_state import ShardState
from counter.stored_reels import StoredReels


def _reels(shard: int, held: int) -> StoredReels:
    state = ShardState()
    for reel_id in range(held):
        state.reel(reel_id)
    store = cast(Any, SimpleNamespace(shard=shard))
    return StoredReels(CounterConfig(), store, state)


def _gauge(shard: int) -> float | None:
    return REGISTRY.get_sample_value("counter_reels", {"shard": str(shard)})


def test_each_shard_publishes_its_own_count_and_forgets_it_when_dropped() -> None:
    first, second = _reels(901, 3), _reels(902, 5)
    first.publish_sizes()
    second.publish_sizes()
    assert (_gauge(901), _gauge(902)) == (3.0, 5.0)
    first.forget_sizes()
    first.forget_sizes()  # a second drop is harmless
    assert (_gauge(901), _gauge(902)) == (None, 5.0)
    second.forget_sizes()


def test_eviction_waits_for_a_snapshot_after_a_pass_that_found_nothing_clean() -> None:
    state = ShardState()
    for reel_id in range(10):
        state.reel(reel_id)
    state.dirty = set(range(10))
    store = cast(Any, SimpleNamespace(shard=903))
    reels = StoredReels(CounterConfig(max_reels_in_memory=4), store, state)
    reels.evict_cold(set)
    assert len(state.reels) == 10  # every reel changed since the last snapshot

    state.dirty = set()  # as if a snapshot wrote them, but nothing said so yet
    reels.evict_cold(set)
    assert len(state.reels) == 10  # no rescan until a snapshot completes

    reels.snapshot_completed()
    reels.evict_cold(set)
    assert len(state.reels) < 10
    assert state.unloaded == set(range(10)) - set(state.reels)
    reels.forget_sizes()
