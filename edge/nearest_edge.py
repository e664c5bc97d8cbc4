"""The nearest healthy edge for a client region, from a configured latency map (what GeoDNS
or anycast decide in production). Pure: health comes from the caller.

Config entries (`region_latencies`): `region:edge=milliseconds`, e.g. `eu-west:edge-0=12`.
The answer is the healthy edge with the lowest latency for the region, ties broken by
name so every edge answers alike; None when the region is unknown or none of its edges is
healthy.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Set
from dataclasses import dataclass

from reelstream.settings import ConfigError

_ENTRY = re.compile(r"\s*([A-Za-z0-9_.-]{1,64})\s*:\s*([A-Za-z0-9_.-]{1,64})\s*=\s*([0-9.]+)\s*")
_NAMED_URL = re.compile(r"\s*([A-Za-z0-9_.-]{1,64})\s*=\s*(https?://\S+?)/?\s*")
REGION = re.compile(r"[A-Za-z0-9_.-]{1,64}")


@dataclass(frozen=True, slots=True)
class EdgeChoice:
    region: str
    edge: str
    latency_ms: float


class LatencyMap:
    """Latency from each client region to each edge."""

    def __init__(self, latencies: dict[str, dict[str, float]]) -> None:
        self._latencies = latencies

    @classmethod
    def parse(cls, entries: Iterable[str]) -> LatencyMap:
        """Builds the map from `region:edge=ms` entries.

        Raises:
            ConfigError: an entry is malformed.
        """
        latencies: dict[str, dict[str, float]] = {}
        for entry in entries:
            match = _ENTRY.fullmatch(entry)
            if match is None:
                raise ConfigError(f"region_latencies: expected region:edge=ms, got {entry!r}")
            latencies.setdefault(match[1], {})[match[2]] = float(match[3])
        return cls(latencies)

    @property
    def regions(self) -> list[str]:
        return sorted(self._latencies)

    @property
    def edges(self) -> set[str]:
        return {edge for row in self._latencies.values() for edge in row}

    def nearest(self, region: str, healthy: Set[str]) -> EdgeChoice | None:
        row = self._latencies.get(region)
        if not row:
            return None
        candidates = [(ms, edge) for edge, ms in row.items() if edge in healthy]
        if not candidates:
            return None
        latency_ms, edge = min(candidates)
        return EdgeChoice(region, edge, latency_ms)


def parse_edge_urls(entries: Iterable[str]) -> dict[str, str]:
    """`name=http://host:port` entries as a map (trailing slash dropped).

    Raises:
        ConfigError: an entry is malformed.
    """
    urls: dict[str, str] = {}
    for entry in entries:
        match = _NAMED_URL.fullmatch(entry)
        if match is None:
            raise ConfigError(f"edge_http_urls: expected name=http://host:port, got {entry!r}")
        urls[match[1]] = match[2]
    return urls
