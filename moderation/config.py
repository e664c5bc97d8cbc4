"""Configuration of the moderation service (env prefix REELSTREAM_MODERATION_)."""

from __future__ import annotations

from dataclasses import dataclass

from reelstream.registration import RegistryConfigFields
from reelstream.ring import DEFAULT_SHARD_COUNT
from reelstream.settings import ConfigError, load_config


@dataclass(frozen=True)
class ModerationConfig(RegistryConfigFields):
    """Settings of the moderation service process."""

    grpc_address: str = "127.0.0.1:50091"
    """host:port of the gRPC server."""
    metrics_port: int = 9191
    """Prometheus /metrics port on 127.0.0.1 (0 disables)."""
    edge_addresses: tuple[str, ...] = ()
    """Edges purged on takedown besides those the service registry lists (every live edge
    is found there, including those `make scale` added; this is for edges that do not
    register)."""
    counter_addresses: tuple[str, ...] = ("127.0.0.1:50061", "127.0.0.1:50062")
    """Seed addresses of counter processes (GetShardMap says which serves each shard)."""
    shard_count: int = DEFAULT_SHARD_COUNT
    """Logical shards on the ring; must equal the counters' shard_count. Counters are
    asked for views velocity; no counter_addresses: reach 1."""
    analysis_workers: int = 2
    """Threads running models and hashing (each model call uses `model_threads`)."""
    max_pending_analyses: int = 32
    """Analyses queued or running; beyond it AnalyzeReel answers RESOURCE_EXHAUSTED."""
    model_threads: int = 1
    """onnxruntime / OpenCV threads of NudeNet."""
    ffmpeg_threads: int = 1
    """Threads of the normalising ffmpeg run before vPDQ."""
    analysis_timeout_s: float = 120.0
    """Time limit of one reel's analysis (the ffmpeg pass stops at it)."""
    blocklist: tuple[str, ...] = ()
    """Caption/hashtag words that remove a reel at once (normalised whole words)."""
    watchlist: tuple[str, ...] = ()
    """Caption/hashtag words that hold a reel for review."""
    default_banks: tuple[str, ...] = ("removed_reels",)
    """Banks created enabled at start-up."""
    removed_reels_bank: str = "removed_reels"
    """Where the hashes of reels removed by review go."""
    nudity_review: float = 0.45
    """NudeNet exposed-body score that holds a reel."""
    nudity_remove: float = 0.92
    """NudeNet score that removes a reel without review."""
    text_review: float = 0.8
    """alt-profanity-check probability that holds a reel."""
    report_escalate_weight: float = 3.0
    """Weighted user reports that open a review item."""
    report_hide_weight: float = 6.0
    """Weighted user reports that hide the reel until a moderator decides."""
    max_lease_s: float = 600.0
    """Longest claim lease a moderator may ask for (default lease 120 s)."""
    rpc_timeout_s: float = 5.0
    """Deadline of one call to an edge or a counter shard."""
    purge_deadline_s: float = 10.0
    """How long a takedown retries edges that did not confirm the purge."""
    log_level: str = "INFO"
    """Root log level."""

    def validate(self) -> None:
        if self.analysis_workers < 1 or self.max_pending_analyses < 1:
            raise ConfigError("analysis_workers and max_pending_analyses must be >= 1")
        if not 0 < self.report_escalate_weight <= self.report_hide_weight:
            raise ConfigError("need 0 < report_escalate_weight <= report_hide_weight")
        if self.max_lease_s <= 0 or self.purge_deadline_s <= 0:
            raise ConfigError("max_lease_s and purge_deadline_s must be positive")


def load(overrides: dict[str, object] | None = None) -> ModerationConfig:
    return load_config(
        ModerationConfig, "REELSTREAM_MODERATION_", "moderation", overrides=overrides
    )
