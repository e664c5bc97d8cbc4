"""The counter's reel gauges are per logical shard: a process hosting several shards used to
show whichever shard set the unlabelled gauge last."""

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
