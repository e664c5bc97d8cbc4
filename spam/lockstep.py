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

Group-size-dependent support (CopyCatch's trade of users against pages): a pair of users
needs `min_common_reels` shared timed reels, but a crowd needs fewer. Two timed cells
(different reels) whose users mostly coincide (at least `crowd_min_users` users in both,
at least `crowd_min_overlap` of the smaller cell, and `crowd_min_lift` times what chance
gives) are a crowd acting together on two reels: its users' events in both cells are
flagged. Independent viewers seldom coincide like that: two cells of n1 and n2 users out
of n active ones share about n1 * n2 / n users by chance. With `ip_hashes`, one cell can
suffice when the crowd comes from few addresses: at least `ip_crowd_min_users` users of a
cell on addresses shared by `ip_crowd_min_per_ip` of them or more, and they are at least
`ip_crowd_min_share` of the cell's users (a carrier NAT holds many viewers, but they are a
minority of any cell), and each such address is mostly the cell's: at least
`ip_crowd_min_address_share` of its users active in that time bucket are in the cell (a
NAT's viewers of one reel are few of the NAT's users in those minutes; counted without
this, NAT viewers beside bots in a small catalog were a crowd). Either rule is off when
its minimum is 0; the address rule is on by default, the two-cell rule off (it flagged
organic viewers and camouflaged bots' campaign reels late on the validation seed; see
docs/spam.md, Lockstep detection).

Finding address crowds sooner (docs/spam.md, Detection delay): an address counts as shared
where most of what its users do in the bucket lies in shared cells
(`ip_crowd_min_address_focus`: true of a farm on several targets at once and of bots
drawing addresses from a pool, not of a NAT); a crowd found is known, so its address's
later events on that reel are flagged as they come (`ip_crowd_known_addresses`); and the
whole history is one bucket more, where a few users of one reel on such addresses are a
crowd (`ip_crowd_history_min_users`: account takeovers, a few victims minutes apart from
the attacker's addresses).

Address pools (`ip_pool_min_users`): addresses used by the same accounts over the history
count as one address for all of the above. Bots drawing each event's address from a pool
spread a cold start's first few accounts over all of it, so no single address carries
enough of them in a cell; their pool does. A carrier NAT and its viewers' home lines share
a user or a few of the NAT's many, so they stay apart (`ip_pool_min_jaccard`).
"""

from __future__ import annotations

from dataclasses import dataclass, replace

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
    crowd_min_users: int = 0
    """Users two cells (reel, time bucket) of different reels must share to flag them as a
    crowd (0: off)."""
    crowd_min_overlap: float = 0.5
    """Shared users over the smaller of the two cells' users."""
    crowd_min_lift: float = 10.0
    """Shared users over what independent viewers would share: n1 * n2 / n, n the users
    active in the quieter of the two cells' buckets (in a small catalog many viewers see
    the same popular reels in one session, so overlap alone is no evidence there)."""
    max_crowd_pairs: int = 5_000_000
    """Bound on (user, cell, cell) triples examined for crowds in one run (the users in the
    fewest cells first)."""
    ip_crowd_min_users: int = 8
    """Users of one cell on shared addresses that flag them (0: off; needs `ip_hashes`).
    8 (the pairs' `min_group_users`): with any shared address counted, on the validation
    seed's cold-start run it flagged no organic event and put the farms' lockstep delay
    p99 at 197 s (4 shared reels alone: 2,167 s), but in the end-to-end test's small
    catalog (1,500 viewers behind 10 carrier NATs) a popular reel's cell where short-watch
    bots from datacenter addresses met NAT viewers was a "crowd" and the test failed; so
    an address counts only where it is mostly the cell's (`ip_crowd_min_address_share`),
    which flags no organic view of that traffic at 48 start times (docs/spam.md, Lockstep
    detection)."""
    ip_crowd_min_per_ip: int = 3
    """Users of the cell on one address for it to count as shared."""
    ip_crowd_min_share: float = 0.5
    """Users on shared addresses over the cell's users."""
    ip_crowd_min_address_share: float = 0.0
    """An address counts as shared in a cell only when at least this share of its users
    active in the cell's time bucket (on any reel) are in the cell (0: any address). Off
    since `ip_crowd_min_address_focus` (0.5 before): a farm on two targets in one bucket,
    or bots drawing each event's address from a pool, spread an address's users over
    several cells, so their crowds were found late or not at all (docs/spam.md, Detection
    delay)."""
    ip_crowd_min_address_focus: float = 0.6
    """An address counts as shared in a cell only when at least this share of what its users
    do in the cell's time bucket (their distinct reels, one row per user and reel) lies in
    cells where the address is shared (0: off). A farm's or a bot net's address carries
    users acting together on the same targets; a carrier NAT carries viewers of many
    reels, of which the few popular ones gather several of its users. On the end-to-end
    test's traffic (a small catalog behind 10 NATs, 48 start times) 0.6 and 0.7 flag no
    organic view, 0.5 flags 13 (docs/spam.md)."""
    ip_crowd_history_min_users: int = 3
    """Users of one reel, over the whole history, on shared addresses (with the per-address
    and per-cell conditions above, the history as one bucket) that make a crowd (0: off).
    Account takeovers act from the attacker's few addresses on the same targets, a few
    victims at a time, minutes apart: seldom 8 in one 10-minute cell, but many in an hour;
    their events on the crowd's reels from those addresses are flagged."""
    ip_crowd_known_addresses: bool = True
    """Once an address made a crowd on a reel, its later events on that reel are flagged as
    they come (from the start of that crowd's cell on), whoever sends them: a crowd found
    is known, and its next minutes on the target need not gather a crowd of their own
    again (docs/spam.md, Detection delay)."""
    ip_pool_min_users: int = 3
    """Users two addresses must have in common over the history (each used both) to be one
    pool, which the address crowds count as one address (0: off). Bots drawing each
    event's address from a pool spread a few accounts over all of it, so no single address
    gathers `ip_crowd_min_per_ip` of them in a cell until many bots are active: in a cold
    start the short-watch bots of the first 20 minutes were found up to 23 minutes late.
    With pools lockstep's own p99 over the cold-start run went from 607.6 s to 159.0 s on
    seed 101 and from 507.2 s to 195.3 s on the validation seed, organic flags 0 on both
    and on the end-to-end test's traffic (docs/spam.md, Detection delay, Session 12)."""
    ip_pool_min_jaccard: float = 0.5
    """Users in common over the users of either address, for two addresses to be pooled: a
    pool's addresses carry the same accounts; a carrier NAT and a viewer's home line share
    one user of the NAT's many."""
    ip_pool_max_pairs: int = 2_000_000
    """Bound on (user, address, address) triples examined for pools in one run (the users
    on the fewest addresses first)."""


@dataclass(frozen=True)
class LockstepResult:
    flagged: BoolArray
    """Per event: acted in lockstep with its group."""
    group: I64
    """Per event: the group of its user (-1: none)."""
    groups: int
    crowd: BoolArray
    """Per event: flagged by a crowd rule only (not by the pairs' groups)."""


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


def _within_pair_budget(user: I64, users: int, max_pairs: int) -> BoolArray:
    """Per row, whether its user is within the budget of `max_pairs` pairs of rows within
    a user, the users with the fewest rows first."""
    per_user = np.bincount(user, minlength=users)
    pairs = per_user * (per_user - 1) // 2
    order = np.argsort(pairs, kind="stable")
    allowed = np.zeros(users, np.bool_)
    allowed[order[np.cumsum(pairs[order]) <= max_pairs]] = True
    keep: BoolArray = allowed[user]
    return keep


def _crowd_members(
    cell_user: I64,
    cell: I64,
    cell_size: I64,
    cell_reel: I64,
    cell_active: I64,
    users: int,
    params: LockstepParams,
) -> I64:
    """Keys `cell * users + user` of the users in crowds: pairs of cells of different
    reels sharing at least `crowd_min_users` users and `crowd_min_overlap` of the smaller
    cell's. One row per distinct (cell, user)."""
    none = np.zeros(0, np.int64)
    cells = len(cell_size)
    # Only cells that could hold a crowd; every pair of them a user is in.
    size = cell_size[cell]
    usable = (size >= params.crowd_min_users) & (size <= params.max_cell_users)
    user, cell = cell_user[usable], cell[usable]
    # The users in the fewest cells first: a crowd's members act on a few reels; a heavy
    # viewer is in many cells and each pair of them says little.
    keep = _within_pair_budget(user, users, params.max_crowd_pairs)
    # Pairs of cells within each user: _pairs_in_cells with users as the "cells".
    first, second, member = _pairs_in_cells(user[keep], cell[keep])
    other_reel = cell_reel[first] != cell_reel[second]
    first, second, member = first[other_reel], second[other_reel], member[other_reel]
    if not len(first):
        return none
    pair_key = first * cells + second  # first < second: each user's cells ascend
    pairs, shared = unique_counts(pair_key)
    size_a, size_b = cell_size[pairs // cells], cell_size[pairs % cells]
    active = np.minimum(cell_active[pairs // cells], cell_active[pairs % cells])
    crowd = pairs[
        (shared >= params.crowd_min_users)
        & (shared >= params.crowd_min_overlap * np.minimum(size_a, size_b))
        & (shared * active >= params.crowd_min_lift * size_a * size_b)
    ]
    in_crowd = member_of(pair_key, crowd)
    member = member[in_crowd]
    members: I64 = unique_sorted(
        np.concatenate([first[in_crowd] * users + member, second[in_crowd] * users + member])
    ).astype(np.int64)
    return members


def _ip_crowd_members(
    user: I64,
    cell: I64,
    bucket: I64,
    ip_key: I64,
    addresses: int,
    cell_size: I64,
    users: int,
    params: LockstepParams,
) -> tuple[I64, I64]:
    """Keys `cell * users + user` of the users of cells where at least
    `ip_crowd_min_users` users, and `ip_crowd_min_share` of the cell's, act from addresses
    shared by `ip_crowd_min_per_ip` of them or more (and, with
    `ip_crowd_min_address_share`, by that share of the address's users active in the
    cell's bucket); and keys `cell * addresses + address` of the shared addresses of those
    cells. `bucket` is each event's time bucket, numbered apart per grid like the cells;
    `ip_key` its dense address (-1: unknown). One row per event (any repeats)."""
    known = ip_key >= 0
    user, cell, bucket, ip_key = user[known], cell[known], bucket[known], ip_key[known]
    cell_ip_user = unique_sorted((cell * addresses + ip_key) * users + user).astype(np.int64)
    cell_ip, users_on_ip = unique_counts(cell_ip_user // users)
    shared = users_on_ip >= params.ip_crowd_min_per_ip
    bucket_ip_user = unique_sorted((bucket * addresses + ip_key) * users + user).astype(np.int64)
    bucket_of_cell = np.zeros(len(cell_size), np.int64)
    bucket_of_cell[cell] = bucket
    if params.ip_crowd_min_address_share > 0 and len(cell_ip):
        bucket_ip, users_in_bucket = unique_counts(bucket_ip_user // users)
        key = bucket_of_cell[cell_ip // addresses] * addresses + cell_ip % addresses
        active = users_in_bucket[np.searchsorted(bucket_ip, key)]
        shared &= users_on_ip >= params.ip_crowd_min_address_share * active
    if params.ip_crowd_min_address_focus > 0 and len(cell_ip):
        # Per (bucket, address): its users' (cell, user) rows that lie in cells where the
        # address is shared, over all of its rows in the bucket.
        row_key = bucket_of_cell[cell_ip // addresses] * addresses + cell_ip % addresses
        focus_key, rows = unique_counts(np.repeat(row_key, users_on_ip))
        in_shared = np.bincount(
            np.searchsorted(focus_key, row_key[shared]),
            weights=users_on_ip[shared],
            minlength=len(focus_key),
        )
        focus = in_shared / rows
        shared &= focus[np.searchsorted(focus_key, row_key)] >= params.ip_crowd_min_address_focus
    shared_cell_ip = cell_ip[shared]
    on_shared = cell_ip_user[member_of(cell_ip_user // users, shared_cell_ip)]
    cell_user = unique_sorted((on_shared // users // addresses) * users + on_shared % users).astype(
        np.int64
    )
    cells, shared_users = unique_counts(cell_user // users)
    size = cell_size[cells]
    crowd = (
        (shared_users >= params.ip_crowd_min_users)
        & (shared_users >= params.ip_crowd_min_share * size)
        & (size <= params.max_cell_users)
    )
    crowded = cells[crowd]
    members: I64 = cell_user[member_of(cell_user // users, crowded)]
    crowd_addresses: I64 = shared_cell_ip[member_of(shared_cell_ip // addresses, crowded)].astype(
        np.int64
    )
    return members, crowd_addresses


def _address_crowds(
    user: I64,
    reel: I64,
    ts_ms: I64,
    ip_hashes: U64,
    event_cells: list[I64],
    event_buckets: list[I64],
    cell_size: I64,
    cell_reel: I64,
    cell_start_ms: I64,
    reels: int,
    users: int,
    params: LockstepParams,
) -> tuple[I64, BoolArray]:
    """The address crowds: keys `cell * users + user` of their members (known crowds'
    (reel, address) pairs as cells numbered after the grids' and the history's), and per
    event whether it is flagged as a known crowd's (`_known_crowd_events`)."""
    count = len(user)
    ip_key = np.full(count, -1, np.int64)
    has_ip = ip_hashes != 0
    ip_key[has_ip], addresses = dense_keys(ip_hashes[has_ip])
    if params.ip_pool_min_users and addresses:
        ip_key, addresses = _address_pools(user, ip_key, addresses, users, params)
    addresses = max(1, addresses)
    members, crowd_addresses = _ip_crowd_members(
        np.concatenate([user, user]),
        np.concatenate(event_cells),
        np.concatenate(event_buckets),
        np.concatenate([ip_key, ip_key]),
        addresses,
        cell_size,
        users,
        params,
    )
    if not params.ip_crowd_known_addresses:
        crowd_addresses = crowd_addresses[:0]
    if params.ip_crowd_history_min_users:
        # The whole history as one bucket more: a cell per reel, after the grids' cells.
        # Only its shared addresses' events are flagged (as a known crowd's, from the
        # history's start): a member's other events on the reel may be its own.
        history_cell = len(cell_size) + reel
        history_size = np.bincount(
            unique_sorted(reel * users + user).astype(np.int64) // users, minlength=reels
        )
        _, history_addresses = _ip_crowd_members(
            user,
            history_cell,
            np.full(count, int(max(b.max() for b in event_buckets)) + 1, np.int64),
            ip_key,
            addresses,
            np.concatenate([cell_size, history_size]),
            users,
            replace(params, ip_crowd_min_users=params.ip_crowd_history_min_users),
        )
        crowd_addresses = np.concatenate([crowd_addresses, history_addresses])
        cell_reel = np.concatenate([cell_reel, np.arange(reels, dtype=np.int64)])
        cell_start_ms = np.concatenate([cell_start_ms, np.full(reels, int(ts_ms.min()))])
    known = _known_crowd_events(
        reel, ip_key, ts_ms, crowd_addresses, addresses, cell_reel, cell_start_ms
    )
    # Each known (reel, address) a cell of its own, after the real cells, so that the
    # users it flags join its crowd's group.
    known_cell = len(cell_reel) + dense_keys(reel * addresses + ip_key)[0]
    rows = np.concatenate([members, known_cell[known] * users + user[known]])
    return rows, known


def _address_pools(
    user: I64, ip_key: I64, addresses: int, users: int, params: LockstepParams
) -> tuple[I64, int]:
    """Per event its address pool (dense, -1: unknown address) and the number of pools:
    addresses linked when at least `ip_pool_min_users` users, and `ip_pool_min_jaccard` of
    the users of either, used both over the history; pools are the linked components."""
    known = ip_key >= 0
    user_ip = unique_sorted(user[known] * addresses + ip_key[known]).astype(np.int64)
    row_user, row_ip = user_ip // addresses, user_ip % addresses
    users_on_ip = np.bincount(row_ip, minlength=addresses)
    keep = _within_pair_budget(row_user, users, params.ip_pool_max_pairs)
    # Pairs of addresses within each user: _pairs_in_cells with users as the "cells".
    first, second, _ = _pairs_in_cells(row_user[keep], row_ip[keep])
    pairs, common = unique_counts(first * addresses + second)
    a, b = pairs // addresses, pairs % addresses
    union = users_on_ip[a] + users_on_ip[b] - common
    linked = (common >= params.ip_pool_min_users) & (common >= params.ip_pool_min_jaccard * union)
    graph = coo_matrix(
        (np.ones(int(linked.sum())), (a[linked], b[linked])), shape=(addresses, addresses)
    )
    pools, pool_of = connected_components(graph, directed=False)
    pooled = np.where(known, pool_of.astype(np.int64)[np.maximum(ip_key, 0)], -1)
    return pooled, int(pools)


def _known_crowd_events(
    reel: I64,
    ip_key: I64,
    ts_ms: I64,
    crowd_addresses: I64,
    addresses: int,
    cell_reel: I64,
    cell_start_ms: I64,
) -> BoolArray:
    """Per event: on a reel from an address that made a crowd on that reel (a shared address
    of a crowded cell, `crowd_addresses` keys `cell * addresses + address`), at or after
    the start of the first such cell. A crowd found once is known: its later events on
    that reel from that address are flagged as they come, without waiting for their own
    cell to gather the crowd again (a farm's or a bot net's next minutes on a target)."""
    flagged = np.zeros(len(reel), np.bool_)
    if not len(crowd_addresses):
        return flagged
    crowd_cell = crowd_addresses // addresses
    key = cell_reel[crowd_cell] * addresses + crowd_addresses % addresses
    start = cell_start_ms[crowd_cell]
    order = np.lexsort((start, key))
    key, start = key[order], start[order]
    first = np.r_[True, key[1:] != key[:-1]]
    known_key, known_from_ms = key[first], start[first]
    event_key = reel * addresses + ip_key
    on_known = (ip_key >= 0) & member_of(event_key, known_key)
    at = np.searchsorted(known_key, event_key[on_known])
    flagged[np.flatnonzero(on_known)] = ts_ms[on_known] >= known_from_ms[at]
    return flagged


def detect_lockstep(
    user_ids: U64,
    reel_ids: U64,
    ts_ms: I64,
    params: LockstepParams | None = None,
    ip_hashes: U64 | None = None,
) -> LockstepResult:
    """Finds lockstep groups among the events (views and likes alike); `ip_hashes` (0:
    unknown) enables the one-cell crowds of shared addresses."""
    params = params or LockstepParams()
    count = len(user_ids)
    none = LockstepResult(
        np.zeros(count, np.bool_), np.full(count, -1, np.int64), 0, np.zeros(count, np.bool_)
    )
    if count == 0:
        return none
    user, users = dense_keys(user_ids)
    reel, reels = dense_keys(reel_ids)
    # Each user's distinct reels (the Jaccard denominator).
    user_reel = unique_sorted(user * reels + reel)
    reels_per_user = np.bincount(user_reel // reels, minlength=users)

    pair_reel_keys = []
    budget = params.max_pairs
    # Buckets on the clock, not from the oldest event: as the history moves, a cell keeps
    # its users from one run to the next (so a cell is not found late by a new cut).
    base = int(ts_ms.min()) - int(ts_ms.min()) % params.window_ms
    # For the crowd rules: cells numbered across both grids, each event's cell per grid.
    event_cells: list[I64] = []
    event_buckets: list[I64] = []
    bucket_offset = 0
    rows_user: list[I64] = []
    rows_cell: list[I64] = []
    cell_sizes: list[I64] = []
    cell_reels: list[I64] = []
    cell_actives: list[I64] = []
    cell_starts: list[I64] = []
    cell_offset = 0
    for shift in (0, params.window_ms // 2):
        bucket = (ts_ms - base + shift) // params.window_ms
        all_cells, _ = dense_keys(reel * (int(bucket.max()) + 1) + bucket)
        cell_of_event = unique_sorted(all_cells * users + user).astype(np.int64)
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
        cell_bucket = np.zeros(len(sizes), np.int64)
        cell_bucket[all_cells] = bucket
        bucket_user = unique_sorted(bucket * users + user).astype(np.int64)
        active = np.bincount(bucket_user // users)
        cell_actives.append(active[cell_bucket])
        cell_starts.append(base - shift + cell_bucket * params.window_ms)
        pair_reel_keys.append((first * users + second) * reels + cell_reel[pair_cell])
        event_cells.append(all_cells + cell_offset)
        event_buckets.append(bucket + bucket_offset)
        bucket_offset += int(bucket.max()) + 1
        rows_user.append(cell_user)
        rows_cell.append(cell + cell_offset)
        cell_sizes.append(sizes)
        cell_reels.append(cell_reel)
        cell_offset += len(sizes)

    # Crowds: keys cell * users + user.
    crowd_parts = [np.zeros(0, np.int64)]
    size_of_cell = np.concatenate(cell_sizes)
    if params.crowd_min_users:
        crowd_parts.append(
            _crowd_members(
                np.concatenate(rows_user),
                np.concatenate(rows_cell),
                size_of_cell,
                np.concatenate(cell_reels),
                np.concatenate(cell_actives),
                users,
                params,
            )
        )
    known_crowd = np.zeros(count, np.bool_)
    if params.ip_crowd_min_users and ip_hashes is not None:
        address_rows, known_crowd = _address_crowds(
            user,
            reel,
            ts_ms,
            ip_hashes,
            event_cells,
            event_buckets,
            size_of_cell,
            np.concatenate(cell_reels),
            np.concatenate(cell_starts),
            reels,
            users,
            params,
        )
        crowd_parts.append(address_rows)
    crowd = unique_sorted(np.concatenate(crowd_parts)).astype(np.int64)
    crowd_flagged = (
        member_of(event_cells[0] * users + user, crowd)
        | member_of(event_cells[1] * users + user, crowd)
        | known_crowd
    )
    # A pair shares a reel "in time" once, whichever bucket(s) showed it.
    pair_reel = unique_sorted(np.concatenate(pair_reel_keys))
    pair_ids, common = unique_counts(pair_reel // reels)
    pair = pair_ids.astype(np.int64)
    first, second = pair // users, pair % users
    union = reels_per_user[first] + reels_per_user[second] - common
    linked = (common >= params.min_common_reels) & (common >= params.min_jaccard * union)
    if not linked.any() and not len(crowd):
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
    flagged_by_pairs = (
        in_group[user]
        & member_of(user * reels + reel, member_reel)
        & member_of(event_group_reel, strong_group_reel)
    )
    flagged = flagged_by_pairs | crowd_flagged
    # Crowds are groups of their own, apart from the pairs' components: merged into them
    # they would let a pair's group-reel rule reach back an hour into the crowd's events.
    crowd_component = _crowd_components(crowd, users)
    group_key = np.where(
        in_group[user],
        component[user],
        np.where(crowd_component[user] >= 0, users + crowd_component[user], -1),
    )
    grouped = group_key >= 0
    group = np.full(count, -1, np.int64)
    group[grouped] = dense_keys(group_key[grouped])[0]
    return LockstepResult(
        flagged, group, len(unique_sorted(group_key[grouped])), crowd_flagged & ~flagged_by_pairs
    )


def _crowd_components(crowd: I64, users: int) -> I64:
    """Per user: its crowd group (members of a crowd cell linked together), -1: none."""
    crowd_cell, crowd_user = crowd // users, crowd % users
    group = np.full(users, -1, np.int64)
    if not len(crowd):
        return group
    # Each member linked to the first member of its cell (keys sort by cell first).
    cell_first = np.r_[True, crowd_cell[1:] != crowd_cell[:-1]]
    partner = crowd_user[np.flatnonzero(cell_first)[np.cumsum(cell_first) - 1]]
    graph = coo_matrix((np.ones(len(crowd)), (crowd_user, partner)), shape=(users, users))
    _, component = connected_components(graph, directed=False)
    group[crowd_user] = component[crowd_user]
    return group
