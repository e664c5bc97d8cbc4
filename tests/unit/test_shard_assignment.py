"""The assignment of logical shards to counter processes: total, balanced, stable."""

from __future__ import annotations

from collections import Counter

import pytest

from counter.shard_assignment import assign_shards, shards_of


@pytest.mark.parametrize("shard_count", [1, 2, 8, 16, 64])
@pytest.mark.parametrize("members", [1, 2, 3, 4, 5, 7])
def test_every_shard_has_one_member_and_loads_differ_by_at_most_one(
    shard_count: int, members: int
) -> None:
    names = [f"counter-{i}" for i in range(members)]
    assignment = assign_shards(shard_count, names)
    assert sorted(assignment) == list(range(shard_count))
    loads = Counter(assignment.values())
    counts = [loads.get(name, 0) for name in names]
    assert max(counts) - min(counts) <= 1


def test_every_process_computes_the_same_assignment_whatever_the_member_order() -> None:
    names = ["counter-2", "counter-0", "counter-1"]
    assert assign_shards(8, names) == assign_shards(8, sorted(names))
    assert assign_shards(8, names) == assign_shards(8, [*names, "counter-0"])


@pytest.mark.parametrize("members", [1, 2, 3, 4, 5])
def test_a_joining_member_moves_few_shards(members: int) -> None:
    names = [f"counter-{i}" for i in range(members)]
    before = assign_shards(16, names)
    after = assign_shards(16, [*names, "counter-new"])
    moved = sum(before[s] != after[s] for s in before)
    # Ideal is 16 / (members + 1); the even-share cap costs a few more at most.
    assert 1 <= moved <= 16 // (members + 1) + 3


def test_no_members_no_assignment_and_shards_of_lists_a_members_share() -> None:
    assert assign_shards(8, []) == {}
    assignment = assign_shards(8, ["a", "b"])
    assert shards_of(assignment, "a") | shards_of(assignment, "b") == set(range(8))
    assert not shards_of(assignment, "a") & shards_of(assignment, "b")
