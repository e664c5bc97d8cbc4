"""The lockstep detector on small crafted user-reel graphs."""

from __future__ import annotations

import numpy as np

from spam.lockstep import LockstepParams, detect_lockstep

PARAMS = LockstepParams(window_ms=600_000, min_common_reels=3, min_jaccard=0.5, min_group_users=4)


def events(rows: list[tuple[int, int, int]]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    user, reel, ts = zip(*rows, strict=True)
    return np.array(user, np.uint64), np.array(reel, np.uint64), np.array(ts, np.int64)


def test_a_group_acting_on_the_same_reels_at_the_same_times_is_flagged() -> None:
    rows = [(u, r, r * 3_600_000 + u * 1_000) for u in range(1, 6) for r in (10, 11, 12, 13)]
    rows.append((99, 10, 10 * 3_600_000))  # a bystander on one of the reels
    result = detect_lockstep(*events(rows), PARAMS)
    assert result.groups == 1
    assert result.flagged[:-1].all()
    assert not result.flagged[-1]


def test_the_same_reels_at_different_times_are_not_lockstep() -> None:
    rows = [(u, r, r * 3_600_000 + u * 3_600_000 * 10) for u in range(1, 6) for r in (1, 2, 3, 4)]
    result = detect_lockstep(*events(rows), PARAMS)
    assert result.groups == 0
    assert not result.flagged.any()


def test_a_group_smaller_than_the_minimum_is_not_flagged() -> None:
    rows = [(u, r, r * 3_600_000 + u) for u in range(1, 4) for r in (1, 2, 3, 4)]
    assert not detect_lockstep(*events(rows), PARAMS).flagged.any()


def test_users_sharing_few_of_many_reels_are_not_linked() -> None:
    rows = [(u, r, r * 3_600_000 + u) for u in range(1, 6) for r in (1, 2, 3)]
    # Each user also watched 10 reels of their own: Jaccard 3 / 13 < 0.5.
    rows += [(u, 100 * u + k, k) for u in range(1, 6) for k in range(10)]
    assert not detect_lockstep(*events(rows), PARAMS).flagged.any()
