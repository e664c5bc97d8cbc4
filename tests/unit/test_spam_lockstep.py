"""The lockstep detector on small crafted user-reel graphs."""

from __future__ import annotations

from dataclasses import replace

import numpy as np

from loadtest.spam_traffic import Family, LabelledTraffic, TrafficSpec
from spam.event_frame import VIEW, EventFrame
from spam.lockstep import LockstepParams, detect_lockstep
from spam.lockstep_delay import NEVER, VARIANTS, figures, first_flags

PARAMS = LockstepParams(
    window_ms=600_000, min_common_reels=3, min_jaccard=0.5, min_group_users=4, ip_crowd_min_users=0
)


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


CROWD = LockstepParams(
    window_ms=600_000,
    min_common_reels=4,
    min_group_users=8,
    crowd_min_users=8,
    ip_crowd_min_users=0,
)


def audience(reel_hours: tuple[int, ...], viewers: int = 200) -> list[tuple[int, int, int]]:
    """Other viewers active in the same ten minutes, each on a reel of its own."""
    return [
        (10_000 * hour + v, 100_000 + 10_000 * hour + v, hour * 3_600_000 + v * 1_000)
        for hour in reel_hours
        for v in range(viewers)
    ]


def test_a_crowd_on_two_reels_is_flagged_though_pairs_share_fewer_than_the_minimum() -> None:
    # Ten accounts on the same two reels, each within its own minute: two shared reels,
    # half of what a pair of users needs, but ten users share them.
    rows = [(u, r, r * 3_600_000 + u * 1_000) for u in range(1, 11) for r in (10, 11)]
    rows.append((99, 10, 10 * 3_600_000 + 5_000))  # a bystander on one of the reels
    crowd = len(rows) - 1
    rows += audience((10, 11))
    result = detect_lockstep(*events(rows), CROWD)
    assert result.flagged[:crowd].all()
    assert not result.flagged[crowd:].any()
    assert result.groups == 1
    assert (result.group[:crowd] == result.group[0]).all()
    # Without the crowd rule two shared reels link nobody.
    assert not detect_lockstep(*events(rows), replace(CROWD, crowd_min_users=0)).flagged.any()


def test_in_a_small_audience_viewers_of_two_popular_reels_overlap_by_chance() -> None:
    # 25 viewers active in ten minutes; 20 of them watch reel 10, 20 watch reel 11, so
    # 15 watch both: most of each cell, but what chance gives (20 * 20 / 25 = 16).
    rows = [(u, 10, u * 1_000) for u in range(1, 21)]
    rows += [(u, 11, 30_000 + u * 1_000) for u in range(6, 26)]
    assert not detect_lockstep(*events(rows), CROWD).flagged.any()
    # The same two cells among 400 active viewers are a crowd: its 15 members' events.
    flagged = detect_lockstep(*events(rows + audience((0,), 375)), CROWD).flagged
    in_both = [6 <= user <= 20 for user, _, _ in rows]
    assert list(flagged[: len(rows)]) == in_both
    assert not flagged[len(rows) :].any()


def test_a_crowd_smaller_than_its_minimum_is_not_flagged() -> None:
    rows = [(u, r, r * 3_600_000 + u * 1_000) for u in range(1, 8) for r in (10, 11)]
    assert not detect_lockstep(*events(rows), CROWD).flagged.any()


def test_busy_cells_sharing_a_few_viewers_by_chance_are_not_a_crowd() -> None:
    # Two popular reels in the same ten minutes, 40 viewers each; 10 people watch both
    # (a quarter of each cell: what independent viewers of two popular reels look like).
    both = range(1, 11)
    rows = [(u, 10, u * 1_000) for u in [*both, *range(100, 130)]]
    rows += [(u, 11, u * 1_000) for u in [*both, *range(200, 230)]]
    assert not detect_lockstep(*events(rows), CROWD).flagged.any()


def test_the_same_reel_twice_is_not_a_crowd() -> None:
    # Ten users on one reel in two consecutive buckets: one reel, however many cells.
    rows = [(u, 10, u * 1_000) for u in range(1, 11)]
    rows += [(u, 10, 600_000 + u * 1_000) for u in range(1, 11)]
    rows += audience((0,))
    assert not detect_lockstep(*events(rows), CROWD).flagged.any()


IP_CROWD = LockstepParams(
    window_ms=600_000,
    min_group_users=8,
    ip_crowd_min_users=8,
    ip_crowd_min_address_share=0.0,
    ip_crowd_min_address_focus=0.0,
    ip_crowd_history_min_users=0,
    ip_crowd_known_addresses=False,
    ip_pool_min_users=0,
)


def test_a_crowd_on_one_reel_from_few_addresses_is_flagged() -> None:
    rows = [(u, 10, u * 1_000) for u in range(1, 11)]
    rows.append((99, 10, 5_000))
    user, reel, ts = events(rows)
    ips = np.array([1_001 + u % 2 for u in range(1, 11)] + [7_777], np.uint64)
    result = detect_lockstep(user, reel, ts, IP_CROWD, ips)
    assert result.flagged[:-1].all()
    assert not result.flagged[-1]  # the bystander on its own address
    assert result.groups == 1
    # Without addresses one reel is no evidence.
    assert not detect_lockstep(user, reel, ts, IP_CROWD).flagged.any()


def test_viewers_behind_one_nat_among_many_others_are_not_an_ip_crowd() -> None:
    # 10 of a popular reel's 40 viewers in ten minutes share a carrier NAT address.
    rows = [(u, 10, u * 1_000) for u in range(1, 41)]
    user, reel, ts = events(rows)
    ips = np.array([5_000 if u <= 10 else 10_000 + u for u in range(1, 41)], np.uint64)
    assert not detect_lockstep(user, reel, ts, IP_CROWD, ips).flagged.any()


OWN_ADDRESS_CROWD = replace(IP_CROWD, ip_crowd_min_address_share=0.5)


def test_a_farms_own_addresses_still_make_a_crowd_when_addresses_must_be_mostly_in_the_cell() -> (
    None
):
    # Ten accounts from two addresses on one target, and nowhere else in the bucket.
    rows = [(u, 10, u * 1_000) for u in range(1, 11)]
    rows.append((99, 10, 5_000))
    user, reel, ts = events(rows)
    ips = np.array([1_001 + u % 2 for u in range(1, 11)] + [7_777], np.uint64)
    flagged = detect_lockstep(user, reel, ts, OWN_ADDRESS_CROWD, ips).flagged
    assert flagged.tolist() == [True] * 10 + [False]


def nat_viewers_of_a_popular_reel() -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Users 1-16 view reel 10: 1-10 behind two carrier NATs, 11-16 on their own
    addresses; users 20-49 view a reel each from the same NATs in the same ten minutes."""
    rows = [(u, 10, u * 1_000) for u in range(1, 17)]
    rows += [(u, 100 + u, u * 1_000) for u in range(20, 50)]
    user, reel, ts = events(rows)
    nat = [5_000 + u % 2 for u in range(1, 11)]
    ips = np.array(
        nat + [10_000 + u for u in range(11, 17)] + [5_000 + u % 2 for u in range(20, 50)],
        np.uint64,
    )
    return user, reel, ts, ips


def test_shared_addresses_whose_users_are_mostly_elsewhere_in_the_bucket_are_no_crowd() -> None:
    # A popular reel's cell: 5 viewers behind each of two carrier NATs, beside 30 other
    # viewers of those NATs on other reels in the same ten minutes (and 6 more viewers on
    # their own addresses): half the cell on shared addresses, but a small share of their
    # addresses' users. The rule without the address share flags them.
    user, reel, ts, ips = nat_viewers_of_a_popular_reel()
    assert detect_lockstep(user, reel, ts, IP_CROWD, ips).flagged[:10].all()
    assert not detect_lockstep(user, reel, ts, OWN_ADDRESS_CROWD, ips).flagged.any()


def test_unknown_addresses_are_not_shared() -> None:
    rows = [(u, 10, u * 1_000) for u in range(1, 11)]
    user, reel, ts = events(rows)
    assert not detect_lockstep(user, reel, ts, IP_CROWD, np.zeros(10, np.uint64)).flagged.any()


def test_cells_are_cut_on_the_clock_not_from_the_oldest_event() -> None:
    # Eight users from two addresses on one reel between 9 and 11 minutes: the cells are
    # the same whether the history starts at 0 or at 8.5 minutes (no new cut finds them
    # late, none loses them).
    crowd = [(u, 10, 540_000 + u * 15_000) for u in range(1, 9)]
    for oldest in (0, 510_000):
        rows = [(99, 1, oldest), *crowd]
        user, reel, ts = events(rows)
        ips = np.array([7_777] + [1_001 + u % 2 for u in range(1, 9)], np.uint64)
        flagged = detect_lockstep(user, reel, ts, IP_CROWD, ips).flagged
        assert flagged.tolist() == [False] + [True] * 8


def test_a_crowd_is_a_group_of_its_own() -> None:
    # Pairs linked by four shared reels (users 1-4) and an address crowd (users 11-18)
    # on another reel: two groups, the pairs' rule does not reach into the crowd.
    params = replace(PARAMS, ip_crowd_min_users=8)
    rows = [(u, r, r * 3_600_000 + u * 1_000) for u in range(1, 5) for r in (1, 2, 3, 4)]
    rows += [(u, 9, 9 * 3_600_000 + u * 1_000) for u in range(11, 19)]
    user, reel, ts = events(rows)
    ips = np.array([100 + u for u, _, _ in rows[:16]] + [5_000] * 8, np.uint64)
    result = detect_lockstep(user, reel, ts, params, ips)
    assert result.flagged.all()
    assert result.groups == 2
    assert len(set(result.group[:16].tolist())) == 1
    assert len(set(result.group[16:].tolist())) == 1
    assert result.group[0] != result.group[16]


def test_the_cold_start_delay_is_the_first_run_after_the_crowd_settled() -> None:
    # Eight accounts from two addresses on one reel within a minute, an organic viewer on
    # another: runs every 60 s from the first event, settle 30 s. The crowd is complete at
    # 70 s, settled by the run at 120 s: flagged there.
    rows = [(u, 10, u * 10_000) for u in range(8)]
    rows.append((99, 11, 5_000))
    rows.sort(key=lambda row: row[2])
    user, reel, ts = events(rows)
    family = np.array([Family.ORGANIC if u == 99 else Family.LOCKSTEP for u, _, _ in rows], np.int8)
    frame = EventFrame(
        reel_ids=reel,
        user_ids=user,
        kinds=np.full(len(rows), VIEW, np.int64),
        watch_ms=np.full(len(rows), 20_000, np.int64),
        ts_ms=ts,
        countries=np.zeros(len(rows), np.uint16),
        devices=np.ones(len(rows), np.int64),
        ip_hashes=np.array([7_777 if u == 99 else 1_001 + u % 2 for u, _, _ in rows], np.uint64),
    )
    traffic = LabelledTraffic(frame, family, np.full(20, 30_000, np.int64), TrafficSpec())
    flags = first_flags(traffic, {"address_crowd_8": VARIANTS["address_crowd_8"]})
    at = flags["address_crowd_8"]
    crowd = family == Family.LOCKSTEP
    assert (at[crowd] == 120_000).all()
    assert (at[~crowd] == NEVER).all()
    report = figures(traffic, at)
    assert report["organic_flagged"] == 0
    assert report["farms_whole_run"] == {"events": 8, "p50_s": 90.0, "p99_s": 120.0}
    assert report["per_family"] == {"lockstep": {"flagged": 8, "after_300_s": 0}}


FOCUS_CROWD = replace(IP_CROWD, ip_crowd_min_address_focus=0.6)


def test_a_farm_on_three_targets_at_once_is_a_crowd_of_focused_addresses() -> None:
    # 36 accounts from two addresses, a third of them on each of three targets in the same
    # ten minutes: each address carries 18 users of the bucket, 6 in a cell (a third: the
    # address-share rule misses them), all of what they do in shared cells (focus 1.0).
    rows = [(u, 10 + (u - 1) // 12, u * 1_000) for u in range(1, 37)]
    user, reel, ts = events(rows)
    ips = np.array([1_001 + u % 2 for u in range(1, 37)], np.uint64)
    assert detect_lockstep(user, reel, ts, FOCUS_CROWD, ips).flagged.all()
    own = replace(IP_CROWD, ip_crowd_min_address_share=0.5)
    assert not detect_lockstep(user, reel, ts, own, ips).flagged.any()


def test_nat_viewers_of_a_popular_reel_are_no_crowd_of_focused_addresses() -> None:
    # As in the address-share test: 5 viewers behind each of two NATs on a popular reel,
    # the NATs' 30 other viewers each on a reel of its own: most of what the NATs carry is
    # not in shared cells (focus 5 / 20).
    user, reel, ts, ips = nat_viewers_of_a_popular_reel()
    assert detect_lockstep(user, reel, ts, IP_CROWD, ips).flagged[:10].all()
    assert not detect_lockstep(user, reel, ts, FOCUS_CROWD, ips).flagged.any()


KNOWN_CROWD = replace(FOCUS_CROWD, ip_crowd_known_addresses=True)


def test_a_known_crowds_later_events_on_its_reel_from_its_addresses_are_flagged_at_once() -> None:
    minute = 60_000
    crowd = [(u, 10, 20 * minute + u * 1_000) for u in range(1, 9)]  # a crowd at 20 minutes
    later = [
        (1, 10, 45 * minute),  # a member, later, same reel and address: flagged
        (50, 10, 46 * minute),  # a new account, same reel and address: flagged
        (51, 10, 47 * minute),  # the reel from another address: not
        (2, 11, 48 * minute),  # a member's address on another reel: not
    ]
    earlier = [(52, 10, 2 * minute)]  # the reel and address before the crowd's cell: not
    rows = earlier + crowd + later
    user, reel, ts = events(rows)
    ips = np.array([1_001] + [1_001 + u % 2 for u in range(1, 9)] + [1_001, 1_001, 7_777, 1_001])
    result = detect_lockstep(user, reel, ts, KNOWN_CROWD, ips.astype(np.uint64))
    assert result.flagged.tolist() == [False] + [True] * 8 + [True, True, False, False]
    assert result.groups == 1
    # Without the known crowds only the crowd's own cell.
    flagged = detect_lockstep(user, reel, ts, FOCUS_CROWD, ips.astype(np.uint64)).flagged
    assert flagged.tolist() == [False] + [True] * 8 + [False] * 4


def takeover_rows(victims: int) -> tuple[list[tuple[int, int, int]], list[int]]:
    """Victims 12 minutes apart, each a burst on reels 10-14 from the attacker's three
    addresses, and each an organic view from home on a reel of its own."""
    rows, ips = [], []
    for victim in range(victims):
        start = victim * 12 * 60_000
        for k in range(10):
            rows.append((victim + 1, 10 + k % 5, start + k * 20_000))
            ips.append(9_001 + k % 3)
        rows.append((victim + 1, 500 + victim, start + 600_000))
        ips.append(20_000 + victim)
    return rows, ips


def test_takeover_victims_minutes_apart_on_the_attackers_addresses_are_a_history_crowd() -> None:
    rows, ips = takeover_rows(3)
    user, reel, ts = events(rows)
    result = detect_lockstep(user, reel, ts, LockstepParams(), np.array(ips, np.uint64))
    burst = np.array(ips) < 20_000
    assert (result.flagged == burst).all()
    assert result.groups == 1
    # No two of them share a ten-minute cell with seven others: no crowd without the history.
    no_history = replace(LockstepParams(), ip_crowd_history_min_users=0)
    assert not detect_lockstep(user, reel, ts, no_history, np.array(ips, np.uint64)).flagged.any()


def test_two_victims_are_no_history_crowd() -> None:
    rows, ips = takeover_rows(2)
    user, reel, ts = events(rows)
    assert not detect_lockstep(
        user, reel, ts, LockstepParams(), np.array(ips, np.uint64)
    ).flagged.any()


def test_nat_viewers_of_an_obscure_reel_over_the_hour_are_no_history_crowd() -> None:
    # Three viewers of one NAT on an obscure reel over an hour (the reel's only viewers),
    # among 60 of the NAT's viewers each on reels of its own.
    rows = [(u, 10, u * 600_000) for u in range(1, 4)]
    rows += [(u, 100 + u, u * 50_000) for u in range(1, 61)]
    user, reel, ts = events(rows)
    ips = np.full(len(rows), 5_000, np.uint64)
    assert not detect_lockstep(user, reel, ts, LockstepParams(), ips).flagged.any()


POOLS = LockstepParams()
NO_POOLS = replace(LockstepParams(), ip_pool_min_users=0)


def pool_bots() -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Three bots on targets 10-14 in turn, 15 s apart, each event from the next of eight
    datacenter addresses: every bot uses every address, but on a target each address
    carries one bot; and a viewer of target 10 from its home line."""
    rows = [(b + 1, 10 + k % 5, k * 15_000 + b * 1_000) for b in range(3) for k in range(10)]
    ips = [1_000 + (k + b) % 8 for b in range(3) for k in range(10)]
    rows.append((99, 10, 30_000))
    ips.append(7_777)
    user, reel, ts = events(rows)
    return user, reel, ts, np.array(ips, np.uint64)


def test_bots_spreading_over_an_address_pool_are_a_crowd_of_the_pool() -> None:
    # No address carries 3 of the bots on a target, so without pools they make no crowd
    # (a cold start's first bots); their pool carries all three on each target.
    user, reel, ts, ips = pool_bots()
    assert not detect_lockstep(user, reel, ts, NO_POOLS, ips).flagged.any()
    result = detect_lockstep(user, reel, ts, POOLS, ips)
    assert result.flagged.tolist() == [True] * 30 + [False]
    assert result.groups == 1


def test_addresses_sharing_fewer_users_than_the_minimum_are_no_pool() -> None:
    user, reel, ts, ips = pool_bots()
    four = replace(POOLS, ip_pool_min_users=4)
    assert not detect_lockstep(user, reel, ts, four, ips).flagged.any()


def test_a_households_line_and_its_carrier_nat_are_no_pool() -> None:
    # A household of three on its home line and on a carrier NAT with 60 other viewers;
    # an obscure reel watched by two of them at home and one on the NAT. The addresses
    # share three users, but 3 of the NAT's 63: no pool, so no address carries 3 viewers
    # of the reel (counted as one address, even a crowd of 3 in one cell would be).
    rows = [(u, 10, u * 60_000) for u in range(1, 4)]
    ips = [7_000, 7_000, 5_000]
    rows += [(u, 20 + u, u * 1_000) for u in range(1, 4)]
    ips += [5_000, 5_000, 7_000]
    rows += [(u, 100 + u, u * 5_000) for u in range(4, 64)]
    ips += [5_000] * 60
    user, reel, ts = events(rows)
    addresses = np.array(ips, np.uint64)
    small_crowd = replace(IP_CROWD, ip_crowd_min_users=3, ip_pool_min_users=3)
    assert not detect_lockstep(user, reel, ts, small_crowd, addresses).flagged.any()
    any_overlap = replace(small_crowd, ip_pool_min_jaccard=0.0)
    assert detect_lockstep(user, reel, ts, any_overlap, addresses).flagged[:3].all()


def test_nat_viewers_rotating_over_a_carriers_addresses_are_no_crowd_of_its_pool() -> None:
    # A carrier's 40 viewers, each on all five of its NAT addresses in ten minutes: one
    # pool. Users 1-10 view a popular reel, two from each address (no address shared),
    # beside 6 viewers on their own lines; the pool carries 10 of the cell's 16 users, but
    # most of what it carries is elsewhere (focus 10 / 200).
    rows = [(u, 10, u * 1_000) for u in range(1, 17)]
    ips = [5_000 + u % 5 if u <= 10 else 10_000 + u for u in range(1, 17)]
    rows += [(u, 100 + u, u * 1_000) for u in range(20, 50)]
    ips += [5_000 + u % 5 for u in range(20, 50)]
    nat_users = [*range(1, 11), *range(20, 50)]
    rows += [(u, 1_000 + 10 * u + k, u * 1_000 + k * 100) for u in nat_users for k in range(1, 5)]
    ips += [5_000 + (u + k) % 5 for u in nat_users for k in range(1, 5)]
    user, reel, ts = events(rows)
    addresses = np.array(ips, np.uint64)
    pooled_ip_crowd = replace(IP_CROWD, ip_pool_min_users=3)
    assert not detect_lockstep(user, reel, ts, IP_CROWD, addresses).flagged.any()
    assert detect_lockstep(user, reel, ts, pooled_ip_crowd, addresses).flagged[:10].all()
    assert not detect_lockstep(user, reel, ts, POOLS, addresses).flagged.any()
