import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from counter.unique_viewers import EXACT_LIMIT, UniqueViewers


def ids(start: int, stop: int) -> np.ndarray:
    return np.arange(start, stop, dtype=np.uint64)


def test_exact_below_the_limit_and_duplicates_never_count_twice() -> None:
    viewers = UniqueViewers()
    viewers.add(ids(1, 600))
    viewers.add(ids(300, 1001))
    viewers.add(ids(1, 1001))
    assert viewers.count() == EXACT_LIMIT


@pytest.mark.parametrize("distinct", [1_500, 20_000, 300_000, 2_000_000])
def test_95_percent_of_estimates_are_within_one_percent(distinct: int) -> None:
    errors = []
    for seed in range(20):
        viewers = UniqueViewers()
        rng = np.random.default_rng(seed)
        # Random 62-bit ids: collisions among a few million are vanishingly rare.
        users = rng.integers(0, 2**62, size=distinct, dtype=np.uint64)
        for chunk in np.array_split(users, 7):
            viewers.add(chunk)
        viewers.add(users[: distinct // 3])  # replays change nothing
        errors.append(abs(viewers.count() - distinct) / distinct)
    assert float(np.percentile(errors, 95)) <= 0.01, sorted(errors)[-3:]


def test_round_trip_and_merge_are_idempotent() -> None:
    big, small = UniqueViewers(), UniqueViewers()
    big.add(ids(1, 5_000))
    small.add(ids(4_000, 4_100))
    restored = UniqueViewers.from_bytes(big.to_bytes())
    restored.merge(small)
    restored.merge(small)
    assert restored.count() == big.count()
    again = UniqueViewers.from_bytes(small.to_bytes())
    assert again.count() == 100


def test_leading_zeros_is_exact_at_power_of_two_boundaries() -> None:
    from counter.unique_viewers import leading_zeros

    values = np.array([0, 1, 2**47 - 1, 2**47, 2**63 - 1, 2**63, 2**64 - 1], dtype=np.uint64)
    assert leading_zeros(values).tolist() == [64, 63, 17, 16, 1, 0, 0]


@given(st.lists(st.lists(st.integers(0, 2**64 - 1), max_size=80), max_size=30))
def test_adding_python_lists_equals_adding_arrays(chunks: list[list[int]]) -> None:
    from_lists, from_arrays = UniqueViewers(), UniqueViewers()
    for chunk in chunks:
        from_lists.add_list(chunk)
        from_arrays.add(np.array(chunk, dtype=np.uint64))
    assert from_lists.to_bytes() == from_arrays.to_bytes()
