"""Configuration of a counter shard process (env prefix REELSTREAM_COUNTER_)."""

from __future__ import annotations

import os
import socket
from dataclasses import dataclass, field

from reelstream.cassandra_client import CassandraConfigFields
from reelstream.ring import DEFAULT_SHARD_COUNT
from reelstream.settings import ConfigError, load_config


def _default_owner() -> str:
    return f"{socket.gethostname()}:{os.getpid()}"


@dataclass(frozen=True)
class CounterConfig(CassandraConfigFields):
    """Settings of one counter process (it serves the logical shards assigned to it)."""

    name: str = "counter-0"
    """Stable member name: the shard assignment is computed from the live members' names,
    so a restarted process gets its shards back."""
    shard_count: int = DEFAULT_SHARD_COUNT
    """Logical shards on the ring (every edge must use the same value; fixed for the life
    of a keyspace)."""
    grpc_address: str = "127.0.0.1:50061"
    """host:port of the gRPC server."""
    advertise_address: str = ""
    """host:port edges use to reach this process (empty: `grpc_address`)."""
    metrics_port: int = 9161
    """Prometheus /metrics port on 127.0.0.1 (0 disables)."""
    owner_id: str = field(default_factory=_default_owner)
    """Name of this process in the lease table."""
    lease_ttl_s: float = 10.0
    """A lease not renewed within this time may be taken by another process."""
    lease_renew_s: float = 2.0
    """How often the owner renews its lease."""
    lease_wait_s: float = 120.0
    """How long taking an assigned shard waits for the previous owner's lease before
    giving up (it is tried again at the next membership round)."""
    lease_poll_s: float = 0.2
    """How often a held lease is asked for again while waiting (bounds handoff time)."""
    member_ttl_s: float = 30.0
    """A process whose heartbeat is older than this leaves the shard assignment. Longer
    than the lease TTL on purpose: an owner slowed down by an overloaded Cassandra lets
    its lease lapse now and then, but no other process is assigned its shards meanwhile,
    so it renews and goes on instead of the shards moving (the hour-long soak of session
    4 collapsed in such churn). A crashed process that is not restarted is replaced after
    this time; a restarted one (same name) takes its shards back once its leases expire."""
    membership_interval_s: float = 0.5
    """How often the process heartbeats, reads the members and reconciles its shards."""
    handoff_timeout_s: float = 8.0
    """Bound on one shard's handoff (commit what waits, final snapshot); the lease is
    released after it whatever remains (the next owner then replays more batches)."""
    snapshot_interval_s: float = 2.0
    """How often applied batches are rolled up into per-reel rows."""
    snapshot_max_reels_per_s: float = 500.0
    """Roll-up write budget of the process (shared by every shard it hosts): reels
    written to Cassandra per second at most. Under heavy load snapshots take longer and
    recovery replays more batches, but Cassandra's load is bounded whatever the traffic
    and however many logical shards the process serves. Roll-ups are most of Cassandra's
    work under sustained load: in 300 s soaks at 62,035 events/s on the 2-core machine,
    2,000 wrote ~2,400 reels/s, Cassandra used ~1 core and the shards drained ~48,000
    events/s; 500 wrote ~1,000 reels/s, Cassandra used ~0.7 and they drained all of it
    (docs/reliability.md)."""
    snapshot_busy_reels_per_s: float = 200.0
    """The roll-up budget while commits are backed up (`snapshot_yield_after_s`): roll-ups
    yield to commits (counter/write_pacer.py). Against a fixed 500 (ad-hoc runs of the
    pipeline part of `make bench-counters`, two interleaved rounds each, docs/benchmarks.md,
    session 13): 50 % of events on one reel drained 120,092 and 119,924 events/s against
    80,626 and 82,370; the spread peak did not change (51,606-63,731 either way), and the
    half-rate freshness p99 was 1.08-1.43 s against 1.56-1.61 s."""
    snapshot_yield_after_s: float = 0.5
    """Commits count as backed up while a hosted shard's oldest batch has waited longer
    than this for its commit."""
    snapshot_reels_per_write: int = 128
    """Reels rolled up per Cassandra request (one unlogged batch; each reel's partition
    is still written atomically; a request also stops at 512 rows). Against one request
    per reel, 64 cut the counter's CPU per cold reel ~3.5x and Cassandra's ~3x, and 128
    Cassandra's by another ~30 % (`make bench-rollup`, docs/benchmarks.md; session 18's
    counter-tier runs: docs/benchmarks.md).
    Cassandra logs (rate-limited) a warning for unlogged batches spanning more than
    `unlogged_batch_across_partitions_warn_threshold` partitions (10 by default, 256 on
    the project's own nodes); 1 restores a request per reel."""
    minute_buckets_in_memory_s: float = 900.0
    """Minute buckets older than this are dropped from memory once a snapshot wrote them;
    time-series reads and late events read them back from Cassandra. Bounds a shard's
    memory under steady traffic (each active reel gains a minute bucket a minute)."""
    hour_buckets_in_memory_s: float = 3 * 3_600.0
    """The same for hour buckets. Until session 14 these were 2 days (and days 30 days):
    a reel active every minute then held 67 buckets after 2 days, ~10 KB of dict, so
    100,000 reels per logical shard would have needed GiBs. Events up to a day late (the
    edge's limit) read older hour buckets back from Cassandra."""
    day_buckets_in_memory_s: float = 2 * 86_400.0
    """The same for day buckets (today's and yesterday's stay)."""
    trim_batches: bool = True
    """Delete batch rows once a complete snapshot covers them. Off keeps every batch row
    (an audit trail for fault investigations; recovery still starts at the snapshot)."""
    max_reels_in_memory: int = 100_000
    """Per logical shard, how many reels stay in memory; beyond it, reels that a
    completed snapshot wrote and nothing changed since leave memory (oldest first,
    second chance for reels in use) and are read back on their next use. Bounds a
    shard's memory whatever the catalogue, at the cost of a Cassandra read per return of
    a cold reel. A process holds (logical shards it hosts) x this many reels; in a 600 s
    soak a held reel cost ~5 KB of RSS (docs/reliability.md). 0 keeps every reel."""
    max_pending_batches: int = 512
    """Batches waiting for commit before ApplyBatch answers RESOURCE_EXHAUSTED."""
    max_group_batches: int = 128
    """Batches committed together in one lightweight transaction."""
    watch_interval_s: float = 0.05
    """How often changed counts are pushed to WatchCounts subscribers (and edges). 50 ms
    rather than 100 (session 20, alternated closed-loop peaks): freshness p99 1,102 and
    1,078 ms against 1,268 and 1,348, end to end 491k and 537k events/s against 497k
    and 493k; the cost is at moderate load: at 280,000 events/s the ack p99 was 30.7 and
    32.4 ms against 25.1 and 25.4 (docs/benchmarks.md)."""
    log_level: str = "INFO"
    """Root log level."""

    @property
    def reachable_address(self) -> str:
        """The address published in the member table."""
        return self.advertise_address or self.grpc_address

    @property
    def bucket_memory_ms(self) -> dict[str, int]:
        """Per bucket width, how long a clean bucket stays in memory."""
        return {
            "minute": int(self.minute_buckets_in_memory_s * 1000),
            "hour": int(self.hour_buckets_in_memory_s * 1000),
            "day": int(self.day_buckets_in_memory_s * 1000),
        }

    def validate(self) -> None:
        if not 1 <= self.shard_count <= 4096:
            raise ConfigError(f"shard_count {self.shard_count} is not in [1, 4096]")
        if not self.name:
            raise ConfigError("name must not be empty")
        if self.member_ttl_s < self.lease_ttl_s:
            raise ConfigError("member_ttl_s must be at least lease_ttl_s")
        if self.lease_renew_s * 3 > self.lease_ttl_s:
            raise ConfigError("lease_renew_s must be at most a third of lease_ttl_s")
        if min(self.bucket_memory_ms.values()) < 60_000:
            raise ConfigError("buckets must stay in memory for at least 60 s")
        if not 0 < self.snapshot_busy_reels_per_s <= self.snapshot_max_reels_per_s:
            raise ConfigError("snapshot_busy_reels_per_s must be in (0, snapshot_max_reels_per_s]")
        if self.snapshot_yield_after_s < 0:
            raise ConfigError("snapshot_yield_after_s must be >= 0")
        if not 1 <= self.snapshot_reels_per_write <= 256:
            raise ConfigError("snapshot_reels_per_write must be in [1, 256]")
        if self.max_reels_in_memory < 0:
            raise ConfigError("max_reels_in_memory must be 0 (no limit) or positive")
        if self.max_pending_batches < 1 or self.max_group_batches < 1:
            raise ConfigError("batch limits must be positive")


def load(overrides: dict[str, object] | None = None) -> CounterConfig:
    return load_config(CounterConfig, "REELSTREAM_COUNTER_", "counter", overrides=overrides)
