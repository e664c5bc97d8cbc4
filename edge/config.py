"""Configuration of an edge node (env prefix REELSTREAM_EDGE_)."""

from __future__ import annotations

from dataclasses import dataclass

from reelstream.registration import RegistryConfigFields
from reelstream.ring import DEFAULT_SHARD_COUNT
from reelstream.settings import ConfigError, load_config
from reelstream.user_tokens import parse_keys


@dataclass(frozen=True)
class EdgeConfig(RegistryConfigFields):
    """Settings of one edge node (it registers in the service registry in Cassandra, whose
    contact points `cassandra_hosts` are inherited; it stores nothing else there)."""

    name: str = "edge-0"
    """Stable name of this edge; its journal lives under this name in Redis."""
    grpc_address: str = "127.0.0.1:50051"
    """host:port of the gRPC server."""
    metrics_port: int = 9151
    """Prometheus /metrics port on 127.0.0.1 (0 disables)."""
    redis_url: str = "redis://127.0.0.1:6390/0"
    """The edge's own Redis (AOF on) holding the journal and the outbox."""
    counter_addresses: tuple[str, ...] = ("127.0.0.1:50061", "127.0.0.1:50062")
    """Seed addresses of counter processes: any of them answers GetShardMap, which says
    which process serves each logical shard (the first seed is enough)."""
    shard_count: int = DEFAULT_SHARD_COUNT
    """Logical shards on the ring; must equal the counters' shard_count (checked against
    their shard map: on a mismatch nothing is forwarded and the error is logged)."""
    shard_map_refresh_s: float = 1.0
    """How often the shard map is re-read (also right after a refused or failed call)."""
    origin_address: str = "127.0.0.1:50071"
    """Seed address of the origin (reel metadata, media), used until the service registry
    lists serving origins; then calls are balanced over those (reelstream/member_pool.py)."""
    validate_reels: bool = True
    """Reject events of unknown or removed reels and apply the 50%-of-a-short-reel view rule;
    gate HLS by the reel's state (410 removed, 403 age-restricted without an age-verified
    token). Off only for load tests of the counting or video path alone."""
    reel_cache_entries: int = 2_000_000
    """Reels whose state and duration the edge keeps."""
    reel_cache_ttl_s: float = 60.0
    """How long a known reel's state is trusted before asking the origin again."""
    unknown_reel_ttl_s: float = 5.0
    """How long 'this reel does not exist' is remembered."""
    flush_interval_s: float = 0.1
    """How often accepted events are cut into per-shard batches and sent."""
    max_in_flight_batches: int = 16
    """Batches sent to one shard before waiting for acknowledgments (commit latency then
    overlaps with the next batches instead of serialising them). The sender waits for a
    whole window, so the window must carry more than a commit round trip's worth of cuts:
    with 4, a ~360 ms round trip capped a (edge, shard) pair at ~11 batches/s against 10
    cut per second, and queueing made freshness seconds long at half the peak rate."""
    max_journal_events: int = 5_000_000
    """Events accepted but not yet acknowledged by shards; beyond it RESOURCE_EXHAUSTED
    (the bound that matters while shards are down)."""
    max_forward_backlog_events: int = 20_000
    """A shard that acknowledges batches but has more than this many of the edge's events
    unacknowledged, and more than a second ago, makes the edge hold new calls with events
    for it (up to `admission_wait_s`, then RESOURCE_EXHAUSTED) until it catches up
    (edge/forwarding_pressure.py): under overload the backlog, and the delay before counts
    show, stay bounded instead of growing until the journal is full. 0 disables it.
    Holding costs next to no throughput where refusing cost a fifth: closed-loop peak
    phases, alternated (docs/benchmarks.md, session 19), carried 416k and 427k events/s end
    to end with freshness p99 9.5 and 5.7 s without it, 414k and 420k with 2.3 and 3.0 s
    with it; refusing at once instead of holding had carried 575k and 558k against 705k
    and 716k without, on a less loaded machine. 25,000 rather than 50,000 (session 20,
    alternated closed-loop peaks): freshness p99 1,038 and 973 ms against 1,332 and 1,171,
    for 582k and 598k events/s end to end against 618k and 670k; at 330,000 events/s it
    held 10 and 66 calls of ~13,000 (ack p99 25.6 and 31.4 ms). A shard not behind lately
    holds calls only above twice this: a few seconds' stall at moderate load is not
    overload (session 21, edge/forwarding_pressure.py). 20,000 since session 23, when the
    edges went ahead of the counters in CPU priority (reelstream/infra/cpu_priority.py):
    with 25,000 that took the peak's freshness p99 to 1,065 and 1,025 ms, against 987 and
    976 with the edges at the counters' priority; with 20,000 it was 1,008 and 916, against
    1,030 and 946 for the edges at the counters' priority and 25,000 (alternated 45 s
    peaks; no call held at 250,000 events/s after them)."""
    admission_wait_s: float = 1.0
    """How long a call is held while a shard is behind (`max_forward_backlog_events`)
    before it is refused with RESOURCE_EXHAUSTED."""
    max_batch_events: int = 100_000
    """Largest client batch accepted in one call."""
    view_threshold_ms: int = 3_000
    """A view counts when watched at least this long (or half of a shorter reel)."""
    view_dedupe_window_s: float = 30.0
    """A (viewer, reel) pair counts at most one view per window (0 disables)."""
    view_dedupe_max_entries: int = 1_000_000
    """Bound on remembered (viewer, reel) pairs (16 bytes each); when a pair's set of the
    table is full, the pair whose window ends first is forgotten (edge/view_deduper.py)."""
    max_watch_ms: int = 3_600_000
    """Watch times above this are rejected as absurd."""
    max_future_skew_ms: int = 300_000
    """Client timestamps further in the future are rejected."""
    max_event_age_ms: int = 86_400_000
    """Client timestamps older than this are rejected."""
    count_cache_entries: int = 2_000_000
    """Reels whose live counts the edge keeps (least recently used evicted first)."""
    watch_interval_s: float = 0.1
    """How often changed counts are pushed to WatchCounts subscribers."""
    rpc_timeout_s: float = 5.0
    """Deadline of calls to counter shards."""
    shard_move_wait_s: float = 3.0
    """How long a count or like read waits for a logical shard that is moving between
    counter processes (no owner, or UNAVAILABLE) before the caller gets UNAVAILABLE."""
    spam_screen_enabled: bool = False
    """Inline spam screen after validation: blocklisted users/IPs and per-user and per-IP
    token buckets (edge/spam_screen.py). Off by default: tests and benchmarks send many
    events per user id."""
    spam_address: str = ""
    """SpamService: accepted events are forwarded there and its blocklist followed
    (empty: neither)."""
    spam_user_events_per_s: float = 5.0
    """Screen: sustained events per second of one user."""
    spam_user_burst: float = 120.0
    """Screen: events one user may send at once."""
    spam_ip_events_per_s: float = 200.0
    """Screen: sustained events per second of one IP hash (carrier NATs are shared)."""
    spam_ip_burst: float = 5_000.0
    """Screen: events one IP hash may send at once."""
    spam_forward_max_events: int = 500_000
    """Events waiting to be forwarded to the spam service; beyond it they are shed
    (counted in edge_spam_events_shed_total)."""
    require_user_tokens: bool = False
    """App calls (SendEvents, StreamEvents, SendEvent, GetLikeState) must carry
    `authorization: Bearer <token>` signed with one of `user_token_keys`, and may only send
    events of the token's user (reelstream/user_tokens.py). Off by default for tests and
    benchmarks; see docs/reliability.md."""
    user_token_keys: tuple[str, ...] = ()
    """Active token keys as kid:secret entries; several at once during a rotation. Also
    verify the tokens of viewers of age-restricted reels (even when `require_user_tokens`
    is off); with none, age-restricted reels are served to nobody."""
    log_level: str = "INFO"
    """Root log level."""
    http_address: str = "127.0.0.1:8080"
    """host:port of the HLS HTTP server (players, /resolve, /healthz); edge-N of the local
    stack uses 8080+N."""
    http_reuse_port: bool = False
    """Bind the HTTP port with SO_REUSEPORT, so several edge HTTP workers can share it."""
    http_shutdown_timeout_s: float = 5.0
    """How long in-flight HTTP responses may take to finish at shutdown."""
    segment_cache_bytes: int = 512 * 1024 * 1024
    """Bytes of playlists and segments the edge keeps in memory (S3-FIFO eviction)."""
    max_object_bytes: int = 32 * 1024 * 1024
    """Largest playlist or segment the edge accepts from the origin."""
    max_origin_fetches: int = 256
    """Distinct files fetched from the origin at once; misses beyond it get 503."""
    media_timeout_s: float = 10.0
    """Deadline of one GetManifest or GetSegment call to the origin."""
    playlist_ttl_s: float = 2.0
    """How long a cached playlist is fresh (also its HTTP max-age)."""
    playlist_stale_s: float = 30.0
    """After the TTL, how long a playlist is served stale while it revalidates."""
    prefetch_workers: int = 4
    """Concurrent next-segment prefetches."""
    prefetch_queue: int = 256
    """Next-segment prefetches waiting; beyond it offers are dropped."""
    cold_start_bandwidth_bps: int = 1_000_000
    """The master playlist lists first the highest rung whose average bit rate fits this."""
    save_data_bandwidth_bps: int = 800_000
    """With save-data, only rungs whose average bit rate fits this are offered."""
    retry_after_s: int = 2
    """Retry-After of 503 answers (origin unreachable or overloaded)."""
    cors_allow_origin: str = "*"
    """Access-Control-Allow-Origin of media responses (browser players)."""
    edge_http_urls: tuple[str, ...] = ()
    """Edges /resolve may answer with, as name=http://host:port (this edge included or not;
    it is always a candidate under its own name and http_address)."""
    region_latencies: tuple[str, ...] = ()
    """Latency map of /resolve: region:edge=milliseconds entries."""
    peer_probe_interval_s: float = 2.0
    """How often the other edges' /healthz is probed."""

    def validate(self) -> None:
        if not self.counter_addresses:
            raise ConfigError("counter_addresses must list at least one counter process")
        if not 1 <= self.shard_count <= 4096:
            raise ConfigError(f"shard_count {self.shard_count} is not in [1, 4096]")
        if self.flush_interval_s <= 0 or self.flush_interval_s > 1:
            raise ConfigError("flush_interval_s must be in (0, 1]")
        if self.max_forward_backlog_events < 0:
            raise ConfigError("max_forward_backlog_events must not be negative")
        if not 0 <= self.admission_wait_s <= 10:
            raise ConfigError("admission_wait_s must be in [0, 10]")
        if self.max_journal_events < 1 or self.max_batch_events < 1:
            raise ConfigError("journal and batch limits must be positive")
        if self.segment_cache_bytes < 1 or self.max_object_bytes < 1:
            raise ConfigError("segment_cache_bytes and max_object_bytes must be positive")
        if self.prefetch_queue < 1 or self.prefetch_workers < 0 or self.max_origin_fetches < 1:
            raise ConfigError("prefetch and origin fetch limits must be positive")
        if self.shard_move_wait_s < 0:
            raise ConfigError("shard_move_wait_s must not be negative")
        if self.playlist_ttl_s < 0 or self.playlist_stale_s < 0:
            raise ConfigError("playlist_ttl_s and playlist_stale_s must not be negative")
        if self.require_user_tokens and not self.user_token_keys:
            raise ConfigError("require_user_tokens needs at least one user_token_keys entry")
        try:
            parse_keys(self.user_token_keys)
        except ValueError as exc:
            raise ConfigError(str(exc)) from None
        host, _, port = self.http_address.rpartition(":")
        if not host or not port.isdigit():
            raise ConfigError(f"http_address must be host:port, got {self.http_address!r}")


def load(overrides: dict[str, object] | None = None) -> EdgeConfig:
    return load_config(EdgeConfig, "REELSTREAM_EDGE_", "edge", overrides=overrides)
