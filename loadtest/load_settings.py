"""Knobs of the Locust suite (env prefix REELSTREAM_LOADTEST_, or the `[loadtest]` table of
the TOML file named by REELSTREAM_CONFIG). Read once per Locust process; pure, no Locust
import, so the suite's logic is testable without gevent.

Every process of a distributed run (master and workers) reads the same environment, which
is how `make loadtest` and `make loadtest-distributed` pass them along.
"""

from __future__ import annotations

from dataclasses import dataclass

from reelstream.settings import ConfigError, load_config
from reelstream.user_tokens import parse_keys

# User classes and their default weights. Reporters and moderators are 0 by default (Locust
# then leaves them out): their reports hide popular reels and their decisions change what
# the other users play, so a run enables them on purpose (REELSTREAM_LOADTEST_WEIGHTS, e.g.
# "...,reporter=1,moderator=1") against a stack with the moderation service (`make run`
# starts it). Player viewers and creators drive the real video path: the edges' HLS over
# HTTP and the origin's Upload and transcoding.
DEFAULT_WEIGHTS: dict[str, int] = {
    "viewer": 10,
    "player_viewer": 4,
    # Attack families of the spam simulator (loadtest/spam_campaign.py), one campaign each.
    "short_watch_bot": 1,
    "lockstep_bot": 1,
    "like_farm_bot": 1,
    "camouflaged_bot": 1,
    "geo_hopping_bot": 1,
    "takeover_bot": 1,
    "slow_drip_bot": 1,
    "creator": 1,
    "reporter": 0,
    "moderator": 0,
}
SHAPES = ("", "steady", "ramp", "spike", "diurnal")


@dataclass(frozen=True)
class LoadSettings:
    """What the simulated population does and where it sends its traffic."""

    edges: tuple[str, ...] = ("127.0.0.1:50051", "127.0.0.1:50052")
    """Edge gRPC addresses (see `edge_balancing`)."""
    edge_balancing: str = "round_robin"
    """How app users reach the edges over gRPC. `round_robin`: one balanced channel over
    every edge (health-checked; an edge that dies or drains leaves the pool, reads are
    retried on another; reelstream/channels.py). `nearest`: each user picks the nearest
    edge by health-check latency and fails over to the next on UNAVAILABLE. HLS requests
    always go to the user's nearest edge."""
    http_edges: tuple[str, ...] = ()
    """HLS base URLs, entry i served by edge i; empty means http://127.0.0.1:8080+i."""
    origin: str = "127.0.0.1:50071"
    """Origin gRPC address (catalog seeding, uploads)."""
    moderation: str = "127.0.0.1:50091"
    """ModerationService address (reporters, moderators)."""
    reels: int = 1_000
    """Reel ids first_reel_id .. first_reel_id + reels - 1, picked with Zipf(1) popularity."""
    first_reel_id: int = 1
    """Lowest reel id of the simulated catalog."""
    reel_duration_ms: int = 20_000
    """Duration of seeded reels (what the edge's view rule checks watch times against)."""
    seed_catalog: bool = True
    """Import the simulated catalog into the origin (ImportReels) when a test starts."""
    media_reel_ids: tuple[int, ...] = ()
    """Reels that have HLS media for player viewers. Empty: every process with player
    viewers uploads `media_seed_clips` clips through the origin when the test starts and
    plays those (plus every reel its creators see published)."""
    media_seed_clips: int = 2
    """Clips uploaded for player viewers when `media_reel_ids` is empty (same bytes every
    run, so the origin reuses their transcoded media)."""
    media_clip_seconds: float = 6.0
    """Length of a seeded clip (480x854: the origin makes 480p, 360p and 240p rungs)."""
    media_wait_s: float = 120.0
    """How long a player viewer waits for a playable reel (seeding: upload + transcode)
    before it watches the catalog without video."""
    users: int = 1_000_000
    """Viewer ids are drawn from 1 .. users."""
    weights: tuple[str, ...] = ()
    """Overrides of DEFAULT_WEIGHTS as name=weight entries, e.g. "viewer=5,creator=1"."""
    time_scale: float = 1.0
    """Real time per simulated second of watching (0.1 plays ten times faster). Player
    viewers always play in real time."""
    like_probability: float = 0.08
    """Chance that a viewer likes a reel they watched past the view threshold."""
    unlike_probability: float = 0.2
    """Chance that a viewer takes back a like of this session on a later reel."""
    counts_probability: float = 0.5
    """Chance that a viewer reads the reel's counts (GetCounts) when it starts."""
    spam_accounts: int = 10
    """Bots: attacker accounts (takeover: victims) in each campaign a bot user replays
    (1..1000); each Locust user of a family runs its own campaigns with its own accounts."""
    spam_trace_s: int = 3_600
    """Bots: simulated period of one campaign (the simulator's duration_s, >= 600)."""
    spam_time_scale: float = 0.02
    """Bots: real seconds per simulated second of a campaign (0.02: an hour in 72 s)."""
    user_token_keys: tuple[str, ...] = ()
    """kid:secret entries (the edges' REELSTREAM_EDGE_USER_TOKEN_KEYS). When set, every
    app user signs its SendEvents calls with a token for its own user id (a bot for the
    account it acts as), as a real app does; empty: only REELSTREAM_LOADTEST_TOKEN, if set."""
    clip_seconds: float = 2.0
    """Creators: length of the clip ffmpeg makes for each upload."""
    upload_chunk_bytes: int = 256 * 1024
    """Creators: bytes per Upload stream message."""
    rpc_timeout_s: float = 5.0
    """Deadline of every gRPC call."""
    http_timeout_s: float = 10.0
    """Timeout of every HLS request."""
    shape: str = ""
    """Load shape (steady, ramp, spike, diurnal); empty: Locust's -u/-r/-t."""
    shape_users: int = 50
    """Peak users of the shape."""
    shape_duration_s: float = 120.0
    """Length of the shaped test."""
    shape_spawn_rate: float = 10.0
    """Users started per second by the shape (spikes start at once)."""
    seed: int = 0
    """Seed of the random draws (0: different every run)."""

    def validate(self) -> None:
        if not self.edges:
            raise ConfigError("edges must list at least one edge")
        if self.edge_balancing not in ("round_robin", "nearest"):
            raise ConfigError("edge_balancing must be round_robin or nearest")
        if self.reels < 1 or self.first_reel_id < 1 or self.users < 1:
            raise ConfigError("reels, first_reel_id and users must be positive")
        if self.shape not in SHAPES:
            raise ConfigError(f"shape must be one of {SHAPES[1:]} (or empty)")
        if self.time_scale <= 0:
            raise ConfigError("time_scale must be positive")
        if self.media_seed_clips < 0 or self.media_clip_seconds <= 0:
            raise ConfigError("media_seed_clips must be >= 0 and media_clip_seconds positive")
        if not 0 < self.spam_accounts <= 1_000 or self.spam_trace_s < 600:
            raise ConfigError("spam_accounts must be in 1..1000 and spam_trace_s >= 600")
        if self.spam_time_scale <= 0:
            raise ConfigError("spam_time_scale must be positive")
        if self.user_token_keys:
            try:
                parse_keys(self.user_token_keys)
            except ValueError as exc:
                raise ConfigError(f"user_token_keys: {exc}") from exc
        self.weight_table()

    def weight_table(self) -> dict[str, int]:
        """DEFAULT_WEIGHTS with the `weights` overrides applied."""
        table = dict(DEFAULT_WEIGHTS)
        for entry in self.weights:
            name, sep, value = entry.partition("=")
            name = name.strip()
            if not sep or name not in table:
                raise ConfigError(
                    f"weights: {entry!r} is not name=weight with a name of {sorted(table)}"
                )
            try:
                table[name] = int(value)
            except ValueError as exc:
                raise ConfigError(f"weights: {entry!r} needs an integer weight") from exc
            if table[name] < 0:
                raise ConfigError(f"weights: {entry!r} is negative")
        return table

    def http_edge(self, index: int) -> str:
        if self.http_edges:
            return self.http_edges[index % len(self.http_edges)].rstrip("/")
        return f"http://127.0.0.1:{8080 + index}"

    @property
    def reel_ids(self) -> range:
        return range(self.first_reel_id, self.first_reel_id + self.reels)


def load(environ: dict[str, str] | None = None) -> LoadSettings:
    return load_config(LoadSettings, "REELSTREAM_LOADTEST_", "loadtest", environ=environ)
