"""The simulator's shared pieces: spec, labels, catalog, event parts and organic viewers
(see `loadtest.spam_traffic` for the model)."""

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
