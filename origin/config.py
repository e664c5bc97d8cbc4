"""Configuration of the origin (env prefix REELSTREAM_ORIGIN_)."""

from __future__ import annotations

from dataclasses import dataclass

from reelstream.cassandra_client import CassandraConfigFields
from reelstream.settings import load_config


@dataclass(frozen=True)
class OriginConfig(CassandraConfigFields):
    """Settings of one origin process."""

    grpc_address: str = "127.0.0.1:50071"
    """host:port of the gRPC server."""
    metrics_port: int = 9171
    """Prometheus /metrics port on 127.0.0.1 (0 disables)."""
    media_dir: str = "var/media"
    """Content-addressed folder of transcoded reels."""
    log_level: str = "INFO"
    """Root log level."""


def load(overrides: dict[str, object] | None = None) -> OriginConfig:
    return load_config(OriginConfig, "REELSTREAM_ORIGIN_", "origin", overrides=overrides)
