"""Knobs of the counting benchmark, read once from the environment (`BENCH_*`).

Defaults are the issue's workload (Zipf(1.0) over 1,000,000 reels, 100,000 users, 60 s per
phase); `BENCH_SECONDS` shortens every phase so a quick run fits in a few minutes.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, fields
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[2]


@dataclass(frozen=True)
class BenchSettings:
    """What one `python -m loadtest.bench counters` run does."""

    seconds: float = 60.0
    """Length of every measured phase (env BENCH_SECONDS)."""
    reels: int = 1_000_000
    """Reel ids 1..reels, drawn with Zipf(1.0) popularity (rank = id)."""
    users: int = 100_000
    """User ids 1..users, drawn uniformly."""
    batch_events: int = 1_000
    """Events per EventBatch sent in one SendEvents call."""
    pool_batches: int = 1_000
    """Distinct pre-serialized batches per workload, reused cyclically."""
    like_fraction: float = 0.05
    """Share of like/unlike events; the rest are counted views."""
    hot_fraction: float = 0.5
    """Share of the hot-key workload's events on reel 1."""
    edges: int = 2
    """Edge processes of the pipeline (and do-nothing servers of the ceiling)."""
    shards: int = 2
    """Counter shard processes of the pipeline."""
    inflight: int = 8
    """Concurrent SendEvents calls per edge channel in the closed-loop phases."""
    sample_reels: int = 500
    """Reels whose counts are checked for exactness at the end of the pipeline."""
    quiet_wait_s: float = 120.0
    """Before each phase, wait at most this long for other work on the machine to use at
    most `quiet_cores` (0 disables the wait)."""
    quiet_cores: float = 0.3
    """CPU (in cores) other processes may use when a phase starts."""
    cassandra_heap_mb: int = 768
    """-Xms/-Xmx of the benchmark's Cassandra node (its memtables' heap share stays 256 MiB
    whatever this is; bench_cassandra.py)."""
    seed: int = 20_240_501
    """Seed of every random draw, so two runs send the same events."""
    pipeline_warmup_s: float = 60.0
    """Unmeasured closed-loop load before the pipeline's first phase (env
    BENCH_PIPELINE_WARMUP_S), at most `seconds`. The benchmark's Cassandra starts fresh each
    run, and its first minute drains less: on 233d9fa, one run each, the peak phase carried
    61,074 events/s end to end after 5 s of warm-up and 77,792 after 60 s (docs/benchmarks.md);
    session 9's soaks drained ~43,000 events/s in their first 30 s, then ~88,000."""

    @property
    def warmup_s(self) -> float:
        """Unmeasured load before each measured phase (connections, caches, JIT-free)."""
        return min(5.0, self.seconds / 6)

    @property
    def pipeline_warmup(self) -> float:
        """Seconds of unmeasured load before the pipeline's first phase."""
        return min(self.pipeline_warmup_s, self.seconds)

    @property
    def trial_s(self) -> float:
        """Length of one concurrency trial of the naive baselines."""
        return max(3.0, min(8.0, self.seconds / 4))


def _env_name(field_name: str) -> str:
    return "BENCH_" + field_name.upper()


def load_settings(environ: dict[str, str] | None = None) -> BenchSettings:
    """Settings from `BENCH_<FIELD>` variables over the defaults.

    Raises:
        ValueError: a variable does not parse as its field's type, or is out of range.
    """
    env = dict(os.environ if environ is None else environ)
    values: dict[str, object] = {}
    defaults = BenchSettings()
    for field in fields(BenchSettings):
        raw = env.get(_env_name(field.name))
        if raw is None or raw == "":
            continue
        kind = type(getattr(defaults, field.name))
        try:
            values[field.name] = kind(raw)
        except ValueError as exc:
            raise ValueError(f"{_env_name(field.name)}={raw!r}: expected {kind.__name__}") from exc
    settings = BenchSettings(**values)  # type: ignore[arg-type]
    if settings.seconds <= 0 or settings.edges < 2 or settings.shards < 1:
        raise ValueError("BENCH_SECONDS must be > 0, BENCH_EDGES >= 2 (freshness needs two)")
    if settings.pipeline_warmup_s < 0:
        raise ValueError("BENCH_PIPELINE_WARMUP_S must be >= 0")
    if not 0 < settings.batch_events <= 100_000 or settings.sample_reels > 1000:
        raise ValueError("BENCH_BATCH_EVENTS in (0, 100000], BENCH_SAMPLE_REELS <= 1000")
    return settings
