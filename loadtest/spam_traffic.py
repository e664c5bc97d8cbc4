"""Seeded simulator of labelled viewer traffic: organic viewers plus attack families.

Pure and vectorised (numpy): the same `TrafficSpec` always yields the same events. Every
event carries its family label (0 = organic), so precision and recall can be measured.

Organic viewers: Zipf reel popularity, sessions placed by a diurnal curve, watch time as a
mixture of early swipes and (re)watches as a fraction of the reel's length, likes more
likely after long watches, home countries, one or two devices, IPs that are either a home
line or a carrier NAT shared by many viewers.

Attack families:
- SHORT_WATCH: view bots, watches just above the 3 s view threshold, high steady rate, few
  datacenter IPs, a handful of target reels viewed again and again.
- LOCKSTEP: farms of accounts that each view and like the same target reels within the same
  few minutes, from a few IPs of one range, plus a little random browsing.
- LIKE_FARM: farms liking target reels in lockstep without watching them.
- CAMOUFLAGED: bots imitating organic sessions and watch times, with a share of their views
  and likes going to campaign reels, rotating residential-proxy IPs per session.
- GEO_HOPPING: accounts whose consecutive events come from other countries and IPs minutes
  apart (impossible travel), human-like watches on target reels.
- TAKEOVER: organic accounts taken over for a short burst of likes and views on target reels
  from a new country and IP (only the burst is labelled).
- SLOW_DRIP: many accounts each adding a few human-looking views and likes to target reels
  spread over the whole period (the hardest family; kept for held-out evaluation).
"""

from __future__ import annotations

import enum
from dataclasses import dataclass, field

import numpy as np
import numpy.typing as npt

from spam.event_frame import LIKE, VIEW, EventFrame, pack_country

I64 = npt.NDArray[np.int64]
F64 = npt.NDArray[np.float64]
I8 = npt.NDArray[np.int8]

HOUR_MS = 3_600_000
COUNTRIES = ("US", "IN", "BR", "DE", "GB", "FR", "JP", "ID", "MX", "NG", "TR", "PH")
COUNTRY_WEIGHTS = np.array([20, 18, 12, 6, 6, 5, 5, 8, 6, 5, 4, 5], dtype=np.float64)
PACKED_COUNTRIES = np.array([pack_country(c) for c in COUNTRIES], dtype=np.uint16)
DEVICE_IOS, DEVICE_ANDROID, DEVICE_WEB = 1, 2, 3


class Family(enum.IntEnum):
    """Who produced an event (the label)."""

    ORGANIC = 0
    SHORT_WATCH = 1
    LOCKSTEP = 2
    LIKE_FARM = 3
    CAMOUFLAGED = 4
    GEO_HOPPING = 5
    TAKEOVER = 6
    SLOW_DRIP = 7


DEFAULT_ATTACKERS: dict[Family, int] = {
    Family.SHORT_WATCH: 60,
    Family.LOCKSTEP: 150,
    Family.LIKE_FARM: 120,
    Family.CAMOUFLAGED: 80,
    Family.GEO_HOPPING: 40,
    Family.TAKEOVER: 30,
    Family.SLOW_DRIP: 150,
}


@dataclass(frozen=True)
class TrafficSpec:
    """What to simulate."""

    seed: int = 0
    start_ms: int = 1_800_000_000_000
    duration_s: int = 7_200
    reels: int = 5_000
    organic_users: int = 10_000
    sessions_per_user_hour: float = 0.6
    zipf_exponent: float = 1.05
    attackers: dict[Family, int] = field(default_factory=lambda: dict(DEFAULT_ATTACKERS))
    """Accounts per attack family (0 or absent: the family is not simulated)."""


@dataclass(frozen=True)
class LabelledTraffic:
    """Simulated events sorted by time, their labels and the catalog they refer to."""

    events: EventFrame
    family: I8
    reel_durations_ms: I64
    """Duration of reel r at index r - 1 (reel ids are 1..reels)."""
    spec: TrafficSpec

    def durations_of(self, reel_ids: npt.NDArray[np.uint64]) -> I64:
        return self.reel_durations_ms[reel_ids.astype(np.int64) - 1]

    def take(self, index: npt.NDArray[np.intp] | npt.NDArray[np.bool_]) -> LabelledTraffic:
        return LabelledTraffic(
            self.events.take(index), self.family[index], self.reel_durations_ms, self.spec
        )


@dataclass
class _Parts:
    """Columns being assembled (plain lists of arrays, concatenated at the end)."""

    columns: dict[str, list[npt.NDArray[np.generic]]] = field(
        default_factory=lambda: {
            name: []
            for name in (
                "reel",
                "user",
                "kind",
                "watch",
                "ts",
                "country",
                "device",
                "ip",
                "family",
            )
        }
    )

    def add(
        self,
        family: Family,
        reel: I64,
        user: I64,
        kind: I64,
        watch: I64,
        ts: I64,
        country: npt.NDArray[np.uint16],
        device: I64,
        ip: npt.NDArray[np.uint64],
    ) -> None:
        count = len(reel)
        for name, values in (
            ("reel", reel),
            ("user", user),
            ("kind", kind),
            ("watch", watch),
            ("ts", ts),
            ("country", country),
            ("device", device),
            ("ip", ip),
        ):
            column = np.asarray(values)
            if column.shape != (count,):
                raise ValueError(f"{name} has shape {column.shape}, expected ({count},)")
            self.columns[name].append(column)
        self.columns["family"].append(np.full(count, int(family), dtype=np.int8))


class _Catalog:
    """Reels, their durations and Zipf popularity."""

    def __init__(self, rng: np.random.Generator, spec: TrafficSpec) -> None:
        self.durations_ms = np.clip(
            rng.lognormal(np.log(22_000), 0.6, spec.reels), 5_000, 180_000
        ).astype(np.int64)
        # Popularity rank is a random permutation of reel ids.
        self.by_rank = rng.permutation(spec.reels).astype(np.int64) + 1
        weights = 1.0 / np.arange(1, spec.reels + 1, dtype=np.float64) ** spec.zipf_exponent
        self.cdf = np.cumsum(weights) / weights.sum()

    def popular(self, rng: np.random.Generator, size: int) -> I64:
        ranks = np.searchsorted(self.cdf, rng.random(size), side="right")
        return self.by_rank[np.minimum(ranks, len(self.by_rank) - 1)]

    def duration(self, reels: I64) -> I64:
        return self.durations_ms[reels - 1]

    def targets(self, rng: np.random.Generator, size: int) -> I64:
        """Campaign targets: mostly obscure reels (rank beyond the top 5%)."""
        low = max(1, len(self.by_rank) // 20)
        picked: I64 = self.by_rank[
            rng.choice(np.arange(low, len(self.by_rank)), size, replace=False)
        ]
        return picked


def _human_watch(rng: np.random.Generator, durations: I64) -> I64:
    """Watch time of a human view: early swipe (35%), partial, full or looped watch."""
    count = len(durations)
    swipe = rng.random(count) < 0.35
    ratio = np.where(swipe, rng.beta(1.2, 6.0, count), rng.beta(4.0, 1.6, count))
    loops = rng.random(count) < 0.12
    ratio = ratio + loops * rng.integers(1, 3, count)
    watch: I64 = np.maximum(300, (ratio * durations).astype(np.int64))
    return watch


def _random_ips(rng: np.random.Generator, size: int) -> npt.NDArray[np.uint64]:
    return rng.integers(1, 2**63, size=size, dtype=np.int64).astype(np.uint64)


def _diurnal_times(rng: np.random.Generator, spec: TrafficSpec, size: int) -> I64:
    """Times in [start, end) with density following a day curve (peak in the evening)."""
    span = spec.duration_s * 1000
    drawn = np.zeros(0, dtype=np.int64)
    while len(drawn) < size:
        candidates = rng.integers(0, span, size=2 * size + 16, dtype=np.int64)
        hour_of_day = ((spec.start_ms + candidates) / HOUR_MS) % 24
        density = 1.0 + 0.6 * np.sin(2 * np.pi * (hour_of_day - 14) / 24)
        keep = rng.random(len(candidates)) * 1.6 < density
        drawn = np.concatenate([drawn, candidates[keep]])
    return spec.start_ms + drawn[:size]


def _sessions(
    rng: np.random.Generator,
    catalog: _Catalog,
    spec: TrafficSpec,
    users: I64,
    session_starts: I64,
    mean_events: float,
) -> tuple[I64, I64, I64, I64, I64]:
    """Organic-looking sessions: (session index, user, reel, watch ms, ts ms) per view."""
    lengths = rng.geometric(1.0 / mean_events, size=len(users))
    session = np.repeat(np.arange(len(users)), lengths)
    user = users[session]
    reel = catalog.popular(rng, len(session))
    # A few views rewatch the session's previous reel.
    rewatch = np.zeros(len(session), dtype=np.bool_)
    rewatch[1:] = (rng.random(len(session) - 1) < 0.03) & (session[1:] == session[:-1])
    for _ in range(2):
        reel[1:] = np.where(rewatch[1:], reel[:-1], reel[1:])
    watch = _human_watch(rng, catalog.duration(reel))
    gaps = watch + rng.lognormal(np.log(1_200), 0.7, len(session)).astype(np.int64)
    elapsed = np.cumsum(gaps) - gaps
    first = np.repeat(np.cumsum(lengths) - lengths, lengths)
    ts = session_starts[session] + (elapsed - elapsed[first])
    return session, user, reel, watch, ts


def _likes_after(
    rng: np.random.Generator, reel: I64, watch: I64, ts: I64, durations: I64, rate: float
) -> npt.NDArray[np.bool_]:
    ratio = watch / durations
    return rng.random(len(reel)) < rate * np.minimum(ratio, 1.5) + 0.005


def _organic(rng: np.random.Generator, catalog: _Catalog, spec: TrafficSpec, parts: _Parts) -> None:
    users = spec.organic_users
    home = rng.choice(len(COUNTRIES), size=users, p=COUNTRY_WEIGHTS / COUNTRY_WEIGHTS.sum())
    device_a = rng.choice([DEVICE_IOS, DEVICE_ANDROID, DEVICE_WEB], size=users, p=[0.4, 0.5, 0.1])
    device_b = rng.choice([DEVICE_IOS, DEVICE_ANDROID, DEVICE_WEB], size=users, p=[0.2, 0.3, 0.5])
    home_ip = _random_ips(rng, users)
    # Carrier-grade NAT: many mobile viewers share one address.
    nat_pool = _random_ips(rng, max(10, users // 200))
    nat_ip = nat_pool[rng.integers(0, len(nat_pool), users)]
    activity = rng.lognormal(0.0, 0.8, users) * spec.sessions_per_user_hour
    session_counts = rng.poisson(activity * spec.duration_s / 3600)
    session_user = np.repeat(np.arange(users), session_counts)
    starts = _diurnal_times(rng, spec, len(session_user))
    session, user_index, reel, watch, ts = _sessions(rng, catalog, spec, session_user, starts, 12.0)
    count = len(reel)
    # Per session: mobile on the carrier (NAT IP) or at home; sometimes the second device.
    on_mobile = rng.random(len(session_user)) < 0.35
    second_device = rng.random(len(session_user)) < 0.1
    roaming = rng.random(len(session_user)) < 0.01
    ip = np.where(on_mobile[session], nat_ip[user_index], home_ip[user_index])
    device = np.where(second_device[session], device_b[user_index], device_a[user_index])
    country_index = np.where(
        roaming[session], rng.integers(0, len(COUNTRIES), count), home[user_index]
    )
    user_id = user_index + 1
    durations = catalog.duration(reel)
    parts.add(
        Family.ORGANIC,
        reel,
        user_id,
        np.full(count, VIEW),
        watch,
        ts,
        PACKED_COUNTRIES[country_index],
        device,
        ip,
    )
    liked = _likes_after(rng, reel, watch, ts, durations, 0.07)
    parts.add(
        Family.ORGANIC,
        reel[liked],
        user_id[liked],
        np.full(int(liked.sum()), LIKE),
        np.zeros(int(liked.sum()), dtype=np.int64),
        ts[liked] + watch[liked],
        PACKED_COUNTRIES[country_index[liked]],
        device[liked],
        ip[liked],
    )


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


def simulate(spec: TrafficSpec) -> LabelledTraffic:
    """The labelled traffic of `spec`, sorted by time, clipped to its period."""
    rng = np.random.default_rng(spec.seed)
    catalog = _Catalog(rng, spec)
    parts = _Parts()
    _organic(rng, catalog, spec, parts)
    attackers = spec.attackers
    if attackers.get(Family.SHORT_WATCH, 0):
        _short_watch(rng, catalog, spec, parts, attackers[Family.SHORT_WATCH])
    if attackers.get(Family.LOCKSTEP, 0):
        _farm(rng, catalog, spec, parts, Family.LOCKSTEP, attackers[Family.LOCKSTEP], 25, True)
    if attackers.get(Family.LIKE_FARM, 0):
        _farm(rng, catalog, spec, parts, Family.LIKE_FARM, attackers[Family.LIKE_FARM], 40, False)
    if attackers.get(Family.CAMOUFLAGED, 0):
        _camouflaged(rng, catalog, spec, parts, attackers[Family.CAMOUFLAGED])
    if attackers.get(Family.GEO_HOPPING, 0):
        _geo_hopping(rng, catalog, spec, parts, attackers[Family.GEO_HOPPING])
    if attackers.get(Family.TAKEOVER, 0):
        _takeover(rng, catalog, spec, parts, attackers[Family.TAKEOVER])
    if attackers.get(Family.SLOW_DRIP, 0):
        _slow_drip(rng, catalog, spec, parts, attackers[Family.SLOW_DRIP])
    columns = {name: np.concatenate(values) for name, values in parts.columns.items()}
    end_ms = spec.start_ms + spec.duration_s * 1000
    inside = (columns["ts"] >= spec.start_ms) & (columns["ts"] < end_ms)
    order = np.flatnonzero(inside)[np.argsort(columns["ts"][inside], kind="stable")]
    events = EventFrame(
        reel_ids=columns["reel"][order].astype(np.uint64),
        user_ids=columns["user"][order].astype(np.uint64),
        kinds=columns["kind"][order].astype(np.int64),
        watch_ms=columns["watch"][order].astype(np.int64),
        ts_ms=columns["ts"][order].astype(np.int64),
        countries=columns["country"][order].astype(np.uint16),
        devices=columns["device"][order].astype(np.int64),
        ip_hashes=columns["ip"][order].astype(np.uint64),
    )
    return LabelledTraffic(
        events, columns["family"][order].astype(np.int8), catalog.durations_ms, spec
    )


def passes_view_rule(traffic: LabelledTraffic, threshold_ms: int = 3_000) -> npt.NDArray[np.bool_]:
    """Events the edge would count: likes, and views watched at least the threshold (or
    half of a shorter reel); the filter only ever sees these."""
    events = traffic.events
    durations = traffic.durations_of(events.reel_ids)
    needed = np.minimum(threshold_ms, durations // 2)
    counted: npt.NDArray[np.bool_] = (events.kinds != VIEW) | (events.watch_ms >= needed)
    return counted
