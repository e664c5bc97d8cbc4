"""The sort-based helpers answer exactly as numpy's unique and union1d."""

from __future__ import annotations

import numpy as np
from hypothesis import given
from hypothesis import strategies as st

from reelstream.sorted_arrays import distinct_counts, sorted_distinct, sorted_union

columns = st.lists(st.one_of(st.integers(0, 5), st.integers(0, 2**64 - 1)), max_size=60).map(
    lambda values: np.array(values, dtype=np.uint64)
)


@given(columns, columns)
def test_the_helpers_equal_numpys_set_routines(first: np.ndarray, second: np.ndarray) -> None:
    assert sorted_distinct(first).tolist() == np.unique(first).tolist()
    assert sorted_union(first, second).tolist() == np.union1d(first, second).tolist()
    values, counts = distinct_counts(first)
    want_values, want_counts = np.unique(first, return_counts=True)
    assert (values.tolist(), counts.tolist()) == (want_values.tolist(), want_counts.tolist())
    assert sorted_union(first, second).dtype == np.uint64
