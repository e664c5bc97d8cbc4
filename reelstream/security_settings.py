"""Security settings every Reelstream process shares (env prefix REELSTREAM_, TOML section
[security]): transport security, this process's identity, per-caller rate limits and the
streams one connection may open. docs/security.md explains each of them.
"""

from __future__ import annotations

import functools
import os
from dataclasses import dataclass
from pathlib import Path

from reelstream.infra.local_process import var_dir
from reelstream.settings import ConfigError, load_config


@dataclass(frozen=True)
class SecuritySettings:
    """How this process secures its gRPC servers and channels."""

    plaintext: bool = False
    """Development only: serve and dial without TLS (and so without caller identities or
    authorisation). Must be switched on explicitly; without it a process needs certificates."""
    certs_dir: str = ""
    """Folder of `ca.pem` and `<identity>.pem`/`.key` (`make certs`); empty: var/certs."""
    identity: str = ""
    """The certificate this process presents; empty: the tier's own (edge, counter, ...)."""
    rate_limit_rpcs_per_s: float = 5_000.0
    """Sustained RPCs per second one caller (identity at peer host) may make to one
    server; beyond its burst it gets RESOURCE_EXHAUSTED with a retry delay (0 disables)."""
    rate_limit_burst: float = 10_000.0
    """RPCs one caller may make at once before the sustained rate applies."""
    rate_limit_max_callers: int = 100_000
    """Callers whose buckets one server remembers (least recently seen forgotten first)."""
    max_streams_per_connection: int = 1_000
    """HTTP/2 streams (concurrent RPCs) one client connection may have open on a server."""

    def validate(self) -> None:
        if self.rate_limit_rpcs_per_s < 0 or self.rate_limit_burst < 0:
            raise ConfigError("REELSTREAM_RATE_LIMIT_*: rates and bursts must be >= 0")
        if self.rate_limit_rpcs_per_s > 0 and self.rate_limit_burst < 1:
            raise ConfigError("REELSTREAM_RATE_LIMIT_BURST must be >= 1 when limits are on")
        if self.rate_limit_max_callers < 1:
            raise ConfigError("REELSTREAM_RATE_LIMIT_MAX_CALLERS must be >= 1")
        if self.max_streams_per_connection < 1:
            raise ConfigError("REELSTREAM_MAX_STREAMS_PER_CONNECTION must be >= 1")

    @property
    def certs_path(self) -> Path:
        return Path(self.certs_dir) if self.certs_dir else var_dir() / "certs"


@functools.cache
def security_settings() -> SecuritySettings:
    """This process's settings, read once from the environment and `REELSTREAM_CONFIG`."""
    return load_config(SecuritySettings, "REELSTREAM_", "security", environ=os.environ)
