"""The view rule's table: one counted view per (viewer, reel) per window, bounded."""

from __future__ import annotations

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from edge.view_deduper import ViewDeduper

NOW = 1_800_000_000_000
WINDOW = 30_000


def ids(*values: int) -> np.ndarray:
    return np.array(values, dtype=np.uint64)


def test_only_the_first_view_of_a_pair_counts_in_a_batch_and_in_the_window() -> None:
    deduper = ViewDeduper(WINDOW, 1000)
    first = deduper.first_in_window(ids(1, 1, 2, 1), ids(7, 7, 7, 8), NOW)
    assert first.tolist() == [True, False, True, True]
    assert deduper.first_in_window(ids(1, 2), ids(7, 7), NOW + WINDOW - 1).tolist() == [
        False,
        False,
    ]
    assert deduper.first_in_window(ids(1), ids(7), NOW + WINDOW).tolist() == [True]


def test_a_forgotten_view_counts_again() -> None:
    deduper = ViewDeduper(WINDOW, 1000)
    deduper.first_in_window(ids(1, 2), ids(7, 7), NOW)
    deduper.forget(ids(1), ids(7))
    assert deduper.first_in_window(ids(1, 2), ids(7, 7), NOW + 1).tolist() == [True, False]


def test_without_a_window_every_view_counts() -> None:
    deduper = ViewDeduper(0, 10)
    assert deduper.first_in_window(ids(1, 1), ids(7, 7), NOW).all()
    assert len(deduper) == 0


def test_beyond_its_bound_the_pair_whose_window_ends_first_is_forgotten() -> None:
    deduper = ViewDeduper(WINDOW, 2)
    for offset, user in enumerate((1, 2, 3)):
        assert deduper.first_in_window(ids(user), ids(7), NOW + offset).all()
    assert len(deduper) == deduper.capacity == 2
    assert deduper.first_in_window(ids(2, 3), ids(7, 7), NOW + 3).tolist() == [False, False]
    assert deduper.first_in_window(ids(1), ids(7), NOW + 3).all()


def test_many_new_pairs_in_one_set_fill_its_slots_without_losing_the_rest() -> None:
    deduper = ViewDeduper(WINDOW, 4)  # one set of four slots
    users = ids(1, 2, 3, 4, 5, 6)
    assert deduper.first_in_window(users, ids(*[7] * 6), NOW).all()
    assert len(deduper) == 4
    again = deduper.first_in_window(users, ids(*[7] * 6), NOW + 1)
    assert again.sum() == 2  # the two pairs that found no slot count again


@settings(max_examples=200, deadline=None)
@given(
    st.lists(
        st.tuples(
            st.integers(0, 40_000),  # ms since the previous batch
            st.lists(st.tuples(st.integers(1, 6), st.integers(1, 6)), max_size=30),
        ),
        max_size=12,
    ),
    st.sampled_from([4, 16, 4096]),
)
def test_a_view_is_refused_only_when_its_pair_counted_within_the_window(
    steps: list[tuple[int, list[tuple[int, int]]]], max_entries: int
) -> None:
    """Against an unbounded per-event reference: the same answers while the table has
    room; when it is full, only extra counts (a forgotten pair), never a wrong refusal."""
    deduper = ViewDeduper(WINDOW, max_entries)
    counted_at: dict[tuple[int, int], int] = {}
    now = NOW
    for elapsed, views in steps:
        now += elapsed
        users = ids(*(user for user, _ in views))
        reels = ids(*(reel for _, reel in views))
        got = deduper.first_in_window(users, reels, now).tolist()
        assert len(deduper) <= max_entries
        for (user, reel), first in zip(views, got, strict=True):
            within = now < counted_at.get((user, reel), -WINDOW) + WINDOW
            if max_entries >= 4096:  # 36 pairs never fill it
                assert first == (not within)
            else:
                assert first or within
            if first:
                counted_at[(user, reel)] = now
