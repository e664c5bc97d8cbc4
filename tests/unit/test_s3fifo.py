"""S3-FIFO, bounded in bytes: the bound, the queues' roles, and its edge over LRU."""

from __future__ import annotations

import random
from collections import OrderedDict

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from edge.s3fifo import S3FifoCache


def test_new_objects_are_stored_and_returned() -> None:
    cache: S3FifoCache[str, str] = S3FifoCache(100)
    cache.put("a", "A", 10)
    assert cache.get("a") == "A"
    assert cache.size_bytes == 10
    assert "a" in cache
    assert len(cache) == 1


def test_an_object_larger_than_the_cache_is_not_admitted() -> None:
    cache: S3FifoCache[str, str] = S3FifoCache(100)
    assert cache.put("big", "x", 101) == []
    assert "big" not in cache
    assert cache.size_bytes == 0


def test_one_hit_wonders_leave_before_a_reused_object() -> None:
    cache: S3FifoCache[str, int] = S3FifoCache(100)
    cache.put("hot", 0, 10)
    cache.get("hot")
    evicted: list[str] = []
    for i in range(50):  # a scan of objects requested once
        evicted += cache.put(f"scan-{i}", i, 10)
    assert "hot" in cache
    assert "hot" not in evicted
    assert cache.size_bytes <= 100


def test_an_object_requested_again_soon_after_eviction_returns_to_main() -> None:
    cache: S3FifoCache[str, int] = S3FifoCache(100)
    cache.put("a", 0, 10)
    for i in range(20):
        cache.put(f"s{i}", i, 10)
    assert "a" not in cache  # left through the small queue into the ghost
    cache.put("a", 0, 10)  # a ghost hit goes straight to main
    for i in range(20, 29):
        cache.put(f"s{i}", i, 10)
    assert "a" in cache


def test_a_speculative_insert_is_not_counted_as_a_reuse() -> None:
    cache: S3FifoCache[str, int] = S3FifoCache(100)
    cache.put("prefetched", 0, 10, speculative=True)
    cache.get("prefetched")  # the real request
    for i in range(20):
        cache.put(f"s{i}", i, 10)
    assert "prefetched" not in cache


def test_replacing_an_object_updates_its_size() -> None:
    cache: S3FifoCache[str, str] = S3FifoCache(100)
    cache.put("p", "v1", 10)
    cache.put("p", "v2", 30)
    assert cache.peek("p") == "v2"
    assert cache.size_bytes == 30
    assert len(cache) == 1


def test_remove_frees_the_bytes() -> None:
    cache: S3FifoCache[str, str] = S3FifoCache(100)
    cache.put("a", "A", 40)
    assert cache.remove("a") == 40
    assert cache.remove("a") == 0
    assert cache.size_bytes == 0
    assert "a" not in cache


def test_invalid_capacity_is_refused() -> None:
    with pytest.raises(ValueError, match="capacity"):
        S3FifoCache(0)


operations = st.lists(
    st.tuples(
        st.sampled_from(["put", "get", "remove", "put_spec"]),
        st.integers(0, 40),
        st.integers(0, 300),
    ),
    max_size=400,
)


@settings(max_examples=300, deadline=None)
@given(capacity=st.integers(1, 1000), ops=operations)
def test_bytes_never_exceed_the_bound_and_accounting_is_exact(
    capacity: int, ops: list[tuple[str, int, int]]
) -> None:
    cache: S3FifoCache[int, int] = S3FifoCache(capacity)
    model: dict[int, int] = {}
    for op, key, size in ops:
        if op in ("put", "put_spec"):
            evicted = cache.put(key, size, size, speculative=op == "put_spec")
            if size <= capacity or key in model:
                model[key] = size
            for victim in evicted:
                model.pop(victim, None)
            if key not in cache:
                model.pop(key, None)
        elif op == "get":
            value = cache.get(key)
            assert value == model.get(key)
        else:
            assert cache.remove(key) == model.pop(key, 0)
        assert cache.size_bytes <= capacity
        assert cache.size_bytes == sum(model.values())
        assert set(cache.keys()) == set(model)


def _lru_hits(trace: list[int], capacity: int) -> int:
    lru: OrderedDict[int, None] = OrderedDict()
    hits = 0
    for key in trace:
        if key in lru:
            hits += 1
            lru.move_to_end(key)
        else:
            lru[key] = None
            if len(lru) > capacity:
                lru.popitem(last=False)
    return hits


def test_beats_lru_on_a_zipf_trace() -> None:
    rng = random.Random(7)
    catalog = 5000
    weights = [1 / (rank + 1) for rank in range(catalog)]
    trace = rng.choices(range(catalog), weights=weights, k=60_000)
    capacity = 250
    cache: S3FifoCache[int, int] = S3FifoCache(capacity)
    hits = 0
    for key in trace:
        if cache.get(key) is not None:
            hits += 1
        else:
            cache.put(key, key, 1)
    assert hits > _lru_hits(trace, capacity) * 1.05
