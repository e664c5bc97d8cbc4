"""Configuration of a counter shard process (env prefix REELSTREAM_COUNTER_)."""

from __future__ import annotations

import os
import socket
from dataclasses import dataclass, field

from reelstream.cassandra_client import CassandraConfigFields
from reelstream.settings import ConfigError, load_config


def _default_owner() -> str:
    return f"{socket.gethostname()}:{os.getpid()}"


@dataclass(frozen=True)
class CounterConfig(CassandraConfigFields):
    """Settings of one counter shard process."""

    shard: int = 0
    """The shard id this process leases and serves."""
    shard_count: int = 2
    """Number of shards on the ring (every edge must use the same value)."""
    grpc_address: str = "127.0.0.1:50061"
    """host:port of the gRPC server."""
    metrics_port: int = 9161
    """Prometheus /metrics port on 127.0.0.1 (0 disables)."""
    owner_id: str = field(default_factory=_default_owner)
    """Name of this process in the lease table."""
    lease_ttl_s: float = 10.0
    """A lease not renewed within this time may be taken by another process."""
    lease_renew_s: float = 2.0
    """How often the owner renews its lease."""
    lease_wait_s: float = 120.0
    """How long start-up waits for a held lease to expire before giving up."""
    snapshot_interval_s: float = 2.0
    """How often applied batches are rolled up into per-reel rows."""
    snapshot_max_reels_per_s: float = 2_000.0
    """Roll-up write budget: reels written to Cassandra per second at most. Under heavy
    load snapshots take longer and recovery replays more batches, but Cassandra's load is
    bounded whatever the traffic."""
    trim_batches: bool = True
    """Delete batch rows once a complete snapshot covers them. Off keeps every batch row
    (an audit trail for fault investigations; recovery still starts at the snapshot)."""
    max_pending_batches: int = 512
    """Batches waiting for commit before ApplyBatch answers RESOURCE_EXHAUSTED."""
    max_group_batches: int = 128
    """Batches committed together in one lightweight transaction."""
    watch_interval_s: float = 0.1
    """How often changed counts are pushed to WatchCounts subscribers."""
    log_level: str = "INFO"
    """Root log level."""

    def validate(self) -> None:
        if self.shard_count < 1 or not 0 <= self.shard < self.shard_count:
            raise ConfigError(f"shard {self.shard} is not in [0, {self.shard_count})")
        if self.lease_renew_s * 3 > self.lease_ttl_s:
            raise ConfigError("lease_renew_s must be at most a third of lease_ttl_s")
        if self.max_pending_batches < 1 or self.max_group_batches < 1:
            raise ConfigError("batch limits must be positive")


def load(overrides: dict[str, object] | None = None) -> CounterConfig:
    return load_config(CounterConfig, "REELSTREAM_COUNTER_", "counter", overrides=overrides)
