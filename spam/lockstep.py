"""Lockstep detection on the user-reel bipartite graph with time constraints.

In the spirit of CopyCatch (WWW 2013) and SynchroTrap (CCS 2014): two users are linked when
they acted on the same reels at nearly the same time, often enough and with a Jaccard
similarity high enough; connected groups of linked users of at least `min_group_users` are
lockstep groups, and their events on the reels the group acted on together are flagged.

"Nearly the same time": events are put in time buckets of `window_ms`, twice (the second
grid shifted by half a bucket), so two actions at most `window_ms / 2` apart always share a
bucket and actions more than `window_ms` apart never do. Cells (reel, bucket) with more
than `max_cell_users` users are skipped: on a viral reel everyone acts together, which says
nothing (and would make the pair count quadratic); `max_pairs` bounds the work of one run.
All of it is vectorised; the only loop is over the two grids.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import numpy.typing as npt
from scipy.sparse import coo_matrix
from scipy.sparse.csgraph import connected_components

from spam.windows import dense_keys, member_of, unique_counts, unique_sorted

I64 = npt.NDArray[np.int64]
U64 = npt.NDArray[np.uint64]
BoolArray = npt.NDArray[np.bool_]


@dataclass(frozen=True)
class LockstepParams:
    window_ms: int = 10 * 60_000
    """Actions this close in time (up to the bucket size) count as together."""
    min_common_reels: int = 4
    """Reels two users must share, at the same time, to be linked."""
    min_jaccard: float = 0.5
    """Shared timed reels over the union of both users' reels."""
    min_group_users: int = 8
    """Smallest group that is flagged."""
    max_cell_users: int = 300
    """Cells (reel, time bucket) with more users are ignored."""
    max_pairs: int = 20_000_000
    """Bound on user pairs examined in one run (the largest cells are dropped first)."""


@dataclass(frozen=True)
class LockstepResult:
    flagged: BoolArray
    """Per event: acted in lockstep with its group."""
    group: I64
    """Per event: the group of its user (-1: none)."""
    groups: int


def _pairs_in_cells(cell: I64, user: I64) -> tuple[I64, I64, I64]:
    """Every pair (a < b) of distinct users sharing a cell, with the cell."""
    order = np.lexsort((user, cell))
    cell, user = cell[order], user[order]
    starts = np.flatnonzero(np.r_[True, cell[1:] != cell[:-1]])
    sizes = np.diff(np.r_[starts, len(cell)])
    local = np.arange(len(cell)) - np.repeat(starts, sizes)
    partners = np.repeat(sizes, sizes) - 1 - local
    first = np.repeat(np.arange(len(cell)), partners)
    offsets = np.arange(len(first)) - np.repeat(np.cumsum(partners) - partners, partners)
    second = first + 1 + offsets
    return user[first], user[second], cell[first]


def detect_lockstep(
    user_ids: U64, reel_ids: U64, ts_ms: I64, params: LockstepParams | None = None
) -> LockstepResult:
    """Finds lockstep groups among the events (views and likes alike)."""
    params = params or LockstepParams()
    count = len(user_ids)
    none = LockstepResult(np.zeros(count, np.bool_), np.full(count, -1, np.int64), 0)
    if count == 0:
        return none
    user, users = dense_keys(user_ids)
    reel, reels = dense_keys(reel_ids)
    # Each user's distinct reels (the Jaccard denominator).
    user_reel = unique_sorted(user * reels + reel)
    reels_per_user = np.bincount(user_reel // reels, minlength=users)

    pair_reel_keys = []
    budget = params.max_pairs
    base = int(ts_ms.min())
    for shift in (0, params.window_ms // 2):
        bucket = (ts_ms - base + shift) // params.window_ms
        all_cells, _ = dense_keys(reel * (int(bucket.max()) + 1) + bucket)
        cell_of_event = unique_sorted(all_cells * users + user)
        cell_user = cell_of_event % users
        cell = cell_of_event // users
        sizes = np.bincount(cell)
        pair_counts = sizes * (sizes - 1) // 2
        usable = (sizes >= 2) & (sizes <= params.max_cell_users)
        # Smallest cells first within the budget: they carry the most signal.
        by_size = np.argsort(np.where(usable, pair_counts, np.iinfo(np.int64).max), kind="stable")
        within = np.cumsum(pair_counts[by_size]) <= budget
        keep_cells = np.zeros(len(sizes), np.bool_)
        keep_cells[by_size[within & usable[by_size]]] = True
        budget -= int(pair_counts[keep_cells].sum())
        keep = keep_cells[cell]
        first, second, pair_cell = _pairs_in_cells(cell[keep], cell_user[keep])
        cell_reel = np.zeros(len(sizes), np.int64)
        cell_reel[all_cells] = reel
        pair_reel_keys.append((first * users + second) * reels + cell_reel[pair_cell])
    if not any(len(k) for k in pair_reel_keys):
        return none
    # A pair shares a reel "in time" once, whichever bucket(s) showed it.
    pair_reel = unique_sorted(np.concatenate(pair_reel_keys))
    pair_ids, common = unique_counts(pair_reel // reels)
    pair = pair_ids.astype(np.int64)
    first, second = pair // users, pair % users
    union = reels_per_user[first] + reels_per_user[second] - common
    linked = (common >= params.min_common_reels) & (common >= params.min_jaccard * union)
    if not linked.any():
        return none
    graph = coo_matrix(
        (np.ones(int(linked.sum())), (first[linked], second[linked])), shape=(users, users)
    )
    _, component = connected_components(graph, directed=False)
    component = component.astype(np.int64)
    group_sizes = np.bincount(component)
    in_group = group_sizes[component] >= params.min_group_users
    # Linked pairs only; isolated users are their own component of size one.
    # The group's reels: those acted on (in time with a partner) by enough members.
    linked_pair_reel = pair_reel[member_of(pair_reel // reels, pair[linked])]
    pr_pair = linked_pair_reel // reels
    pr_reel = linked_pair_reel % reels
    members = np.concatenate([pr_pair // users, pr_pair % users])
    member_reels = np.concatenate([pr_reel, pr_reel])
    member_reel = unique_sorted(members * reels + member_reels)
    group_of_member = component[member_reel // reels]
    group_reel, members_on_reel = unique_counts(group_of_member * reels + member_reel % reels)
    strong_group_reel = group_reel[members_on_reel >= params.min_group_users // 2]
    event_group_reel = component[user] * reels + reel
    flagged = (
        in_group[user]
        & member_of(user * reels + reel, member_reel)
        & member_of(event_group_reel, strong_group_reel)
    )
    group = np.where(in_group[user], dense_keys(component[user])[0], -1)
    return LockstepResult(flagged, group, int((group_sizes >= params.min_group_users).sum()))
