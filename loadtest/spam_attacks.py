"""The simulator's attack families (see `loadtest.spam_traffic` for each one's behaviour)."""

from __future__ import annotations

import numpy as np

from loadtest.spam_population import (
    COUNTRIES,
    DEVICE_ANDROID,
    DEVICE_IOS,
    DEVICE_WEB,
    I64,
    PACKED_COUNTRIES,
    Family,
    TrafficSpec,
    _Catalog,
    _diurnal_times,
    _human_watch,
    _Parts,
    _random_ips,
    _sessions,
)
from spam.event_frame import LIKE, VIEW, pack_country


def _attacker_ids(family: Family, count: int) -> I64:
    return 100_000_000 + int(family) * 1_000_000 + np.arange(count, dtype=np.int64)


def _short_watch(
    rng: np.random.Generator, catalog: _Catalog, spec: TrafficSpec, parts: _Parts, bots: int
) -> None:
    span = spec.duration_s * 1000
    targets = catalog.targets(rng, 20)
    datacenter = _random_ips(rng, 8)
    user_ids = _attacker_ids(Family.SHORT_WATCH, bots)
    active_ms = rng.integers(20 * 60_000, 60 * 60_000, bots)
    begin = spec.start_ms + rng.integers(0, np.maximum(1, span - active_ms), bots)
    period_ms = rng.integers(4_000, 10_000, bots)
    per_bot = active_ms // period_ms
    bot = np.repeat(np.arange(bots), per_bot)
    step = np.arange(len(bot)) - np.repeat(np.cumsum(per_bot) - per_bot, per_bot)
    ts = begin[bot] + step * period_ms[bot] + rng.integers(0, 1_500, len(bot))
    reel = np.where(
        rng.random(len(bot)) < 0.7,
        targets[rng.integers(0, len(targets), len(bot))],
        catalog.popular(rng, len(bot)),
    )
    watch = rng.integers(3_000, 4_600, len(bot))
    country = PACKED_COUNTRIES[rng.integers(0, 3, bots)][bot]
    device = rng.choice([DEVICE_ANDROID, DEVICE_WEB], bots)[bot]
    ip = datacenter[rng.integers(0, len(datacenter), len(bot))]
    parts.add(
        Family.SHORT_WATCH,
        reel,
        user_ids[bot],
        np.full(len(bot), VIEW),
        watch,
        ts,
        country,
        device,
        ip,
    )


def _farm(
    rng: np.random.Generator,
    catalog: _Catalog,
    spec: TrafficSpec,
    parts: _Parts,
    family: Family,
    accounts: int,
    group_size: int,
    watch_first: bool,
) -> None:
    """Groups acting on the same target reels within the same windows, from few IPs."""
    span = spec.duration_s * 1000
    user_ids = _attacker_ids(family, accounts)
    for group_start in range(0, accounts, group_size):
        members = user_ids[group_start : group_start + group_size]
        targets = catalog.targets(rng, int(rng.integers(12, 25)))
        ips = _random_ips(rng, int(rng.integers(2, 6)))
        country = PACKED_COUNTRIES[rng.integers(0, len(COUNTRIES))]
        window_ms = int(rng.integers(3, 10)) * 60_000
        windows = spec.start_ms + rng.integers(0, span - window_ms, len(targets))
        grid_member, grid_target = np.meshgrid(np.arange(len(members)), np.arange(len(targets)))
        member, target = grid_member.ravel(), grid_target.ravel()
        acts = rng.random(len(member)) < 0.9
        member, target = member[acts], target[acts]
        count = len(member)
        reel = targets[target]
        ts = windows[target] + rng.integers(0, window_ms, count)
        user = members[member]
        ip = ips[rng.integers(0, len(ips), count)]
        device = np.full(count, DEVICE_ANDROID)
        countries = np.full(count, country, dtype=np.uint16)
        like_ts = ts
        if watch_first:
            watch = (rng.beta(5.0, 2.0, count) * catalog.duration(reel)).astype(np.int64)
            watch = np.maximum(watch, 3_000)
            parts.add(family, reel, user, np.full(count, VIEW), watch, ts, countries, device, ip)
            like_ts = ts + watch
            liked = rng.random(count) < 0.7
        else:
            # Like farms: a rare token view, mostly likes out of nowhere.
            liked = np.ones(count, dtype=np.bool_)
            viewed = rng.random(count) < 0.1
            watch = np.full(int(viewed.sum()), 3_100, dtype=np.int64)
            parts.add(
                family,
                reel[viewed],
                user[viewed],
                np.full(len(watch), VIEW),
                watch,
                ts[viewed] - 3_500,
                countries[viewed],
                device[viewed],
                ip[viewed],
            )
        n = int(liked.sum())
        parts.add(
            family,
            reel[liked],
            user[liked],
            np.full(n, LIKE),
            np.zeros(n, dtype=np.int64),
            like_ts[liked],
            countries[liked],
            device[liked],
            ip[liked],
        )
        # A little random browsing as cover.
        cover = len(members) * 4
        cover_reel = catalog.popular(rng, cover)
        cover_member = rng.integers(0, len(members), cover)
        parts.add(
            family,
            cover_reel,
            members[cover_member],
            np.full(cover, VIEW),
            _human_watch(rng, catalog.duration(cover_reel)),
            spec.start_ms + rng.integers(0, span, cover),
            np.full(cover, country, dtype=np.uint16),
            np.full(cover, DEVICE_ANDROID),
            ips[rng.integers(0, len(ips), cover)],
        )


def _camouflaged(
    rng: np.random.Generator, catalog: _Catalog, spec: TrafficSpec, parts: _Parts, bots: int
) -> None:
    user_ids = _attacker_ids(Family.CAMOUFLAGED, bots)
    targets = catalog.targets(rng, 10)
    sessions = rng.poisson(2.0 * spec.duration_s / 3600, bots) + 1
    session_bot = np.repeat(np.arange(bots), sessions)
    starts = _diurnal_times(rng, spec, len(session_bot))
    session, bot, reel, watch, ts = _sessions(rng, catalog, spec, session_bot, starts, 10.0)
    boosted = rng.random(len(reel)) < 0.4
    reel = np.where(boosted, targets[rng.integers(0, len(targets), len(reel))], reel)
    watch = np.where(boosted, _human_watch(rng, catalog.duration(reel)), watch)
    proxy_ip = _random_ips(rng, len(session_bot))  # a new residential proxy per session
    country = PACKED_COUNTRIES[rng.integers(0, len(COUNTRIES), bots)][bot]
    device = rng.choice([DEVICE_IOS, DEVICE_ANDROID], bots)[bot]
    count = len(reel)
    parts.add(
        Family.CAMOUFLAGED,
        reel,
        user_ids[bot],
        np.full(count, VIEW),
        watch,
        ts,
        country,
        device,
        proxy_ip[session],
    )
    liked = boosted & (rng.random(count) < 0.5)
    n = int(liked.sum())
    parts.add(
        Family.CAMOUFLAGED,
        reel[liked],
        user_ids[bot][liked],
        np.full(n, LIKE),
        np.zeros(n, dtype=np.int64),
        ts[liked] + watch[liked],
        country[liked],
        device[liked],
        proxy_ip[session][liked],
    )


def _geo_hopping(
    rng: np.random.Generator, catalog: _Catalog, spec: TrafficSpec, parts: _Parts, bots: int
) -> None:
    span = spec.duration_s * 1000
    user_ids = _attacker_ids(Family.GEO_HOPPING, bots)
    targets = catalog.targets(rng, 15)
    per_bot = rng.integers(20, 60, bots)
    bot = np.repeat(np.arange(bots), per_bot)
    count = len(bot)
    begin = spec.start_ms + rng.integers(0, span // 2, bots)
    ts = begin[bot] + rng.integers(0, span // 2, count)
    reel = np.where(
        rng.random(count) < 0.6,
        targets[rng.integers(0, len(targets), count)],
        catalog.popular(rng, count),
    )
    watch = _human_watch(rng, catalog.duration(reel))
    country = PACKED_COUNTRIES[rng.integers(0, len(COUNTRIES), count)]
    device = rng.choice([DEVICE_IOS, DEVICE_ANDROID, DEVICE_WEB], count)
    ip = _random_ips(rng, count)
    parts.add(
        Family.GEO_HOPPING,
        reel,
        user_ids[bot],
        np.full(count, VIEW),
        watch,
        ts,
        country,
        device,
        ip,
    )
    liked = rng.random(count) < 0.3
    n = int(liked.sum())
    parts.add(
        Family.GEO_HOPPING,
        reel[liked],
        user_ids[bot][liked],
        np.full(n, LIKE),
        np.zeros(n, dtype=np.int64),
        ts[liked] + watch[liked],
        country[liked],
        device[liked],
        ip[liked],
    )


def _takeover(
    rng: np.random.Generator, catalog: _Catalog, spec: TrafficSpec, parts: _Parts, victims: int
) -> None:
    span = spec.duration_s * 1000
    user_ids = rng.choice(np.arange(1, spec.organic_users + 1), victims, replace=False)
    targets = catalog.targets(rng, 10)
    attacker_ips = _random_ips(rng, 3)
    per_victim = rng.integers(20, 50, victims)
    victim = np.repeat(np.arange(victims), per_victim)
    count = len(victim)
    begin = spec.start_ms + rng.integers(0, span - 300_000, victims)
    ts = begin[victim] + rng.integers(0, 300_000, count)
    reel = targets[rng.integers(0, len(targets), count)]
    is_view = rng.random(count) < 0.4
    watch = np.where(is_view, rng.integers(3_000, 6_000, count), 0)
    country = np.full(count, pack_country("RU"), dtype=np.uint16)
    parts.add(
        Family.TAKEOVER,
        reel,
        user_ids[victim],
        np.where(is_view, VIEW, LIKE),
        watch,
        ts,
        country,
        np.full(count, DEVICE_WEB),
        attacker_ips[rng.integers(0, len(attacker_ips), count)],
    )


def _slow_drip(
    rng: np.random.Generator, catalog: _Catalog, spec: TrafficSpec, parts: _Parts, accounts: int
) -> None:
    span = spec.duration_s * 1000
    user_ids = _attacker_ids(Family.SLOW_DRIP, accounts)
    targets = catalog.targets(rng, 8)
    per_account = rng.integers(2, 5, accounts)
    account = np.repeat(np.arange(accounts), per_account)
    count = len(account)
    reel = targets[rng.integers(0, len(targets), count)]
    ts = spec.start_ms + rng.integers(0, span, count)
    watch = _human_watch(rng, catalog.duration(reel))
    country = PACKED_COUNTRIES[rng.integers(0, len(COUNTRIES), accounts)][account]
    ip = _random_ips(rng, accounts)[account]
    device = rng.choice([DEVICE_IOS, DEVICE_ANDROID], accounts)[account]
    parts.add(
        Family.SLOW_DRIP,
        reel,
        user_ids[account],
        np.full(count, VIEW),
        watch,
        ts,
        country,
        device,
        ip,
    )
    liked = rng.random(count) < 0.6
    n = int(liked.sum())
    parts.add(
        Family.SLOW_DRIP,
        reel[liked],
        user_ids[account][liked],
        np.full(n, LIKE),
        np.zeros(n, dtype=np.int64),
        ts[liked] + watch[liked],
        country[liked],
        device[liked],
        ip[liked],
    )
