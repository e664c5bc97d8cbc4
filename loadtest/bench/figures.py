"""The figures of one measured phase, in the shape the report prints and saves."""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field
from typing import Any


@dataclass
class PhaseFigures:
    """One row of the results table (NaN where a figure does not apply)."""

    design: str
    scenario: str
    events_per_s: float
    duration_s: float
    events: int
    ack_p50_ms: float = math.nan
    ack_p99_ms: float = math.nan
    freshness_p50_ms: float = math.nan
    freshness_p99_ms: float = math.nan
    freshness_probes: int = 0
    freshness_timeouts: int = 0
    cassandra_writes_per_s: float = math.nan
    """Partition updates applied by Cassandra (local_write_latency) per second."""
    cassandra_coordinator_writes_per_s: float = math.nan
    cpu_cores: dict[str, float] = field(default_factory=dict)
    """Mean CPU per process (in cores) over the phase; `foreign` is other work on the box."""
    errors: dict[str, int] = field(default_factory=dict)
    service_metrics: dict[str, float] = field(default_factory=dict)
    """The services' own metrics over the phase (see `service_metrics.py`)."""
    notes: str = ""

    def as_dict(self) -> dict[str, Any]:
        return {
            k: (None if isinstance(v, float) and math.isnan(v) else v)
            for k, v in asdict(self).items()
        }


def fmt(value: float, digits: int = 0) -> str:
    """A number for a table cell: thousands separators, a dash for missing."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "-"
    return f"{value:,.{digits}f}"
