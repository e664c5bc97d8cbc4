"""CPU priority of the local stack's tiers when they share one machine.

Edges answer callers that wait (an acknowledgment is due within milliseconds); counter
shards and Cassandra work in batches behind them (a group commit, a roll-up, a compaction
can start a few milliseconds later and nobody waits for it alone). On a shared machine the
launchers start those background tiers at a lower priority, so an edge (and its journal's
Redis) that wakes up for a call gets a core first instead of queueing behind a group
commit. The background tiers still get every cycle the edges leave, so their throughput
only drops when the edges need the cores, which is when callers are waiting.

Measured at about half the closed-loop peak, alternated (docs/benchmarks.md, session
20): acknowledgment p99 at 280,000 events/s 86.9 and 78.2 ms at equal priority against
26.7 and 25.4 ms with counters and Cassandra at nice 10 (at 220,000: 44.3 and 48.1
against 24.7 and 36.9 ms).

`REELSTREAM_BACKGROUND_NICE` (0-19, default 10) sets the niceness; 0 runs every tier at
the same priority. Linux shares the CPU between sessions first (autogroups) and every
launched server leads its own session, so the niceness is given to its session too.
"""

from __future__ import annotations

import contextlib
import os
from pathlib import Path

DEFAULT_BACKGROUND_NICE = 10
BACKGROUND_TIERS = frozenset({"counter", "cassandra"})


class PriorityConfigError(ValueError):
    """REELSTREAM_BACKGROUND_NICE is not a niceness a process can be lowered to."""


def background_nice() -> int:
    """The niceness of background tiers: `$REELSTREAM_BACKGROUND_NICE`, default 10."""
    raw = os.environ.get("REELSTREAM_BACKGROUND_NICE", str(DEFAULT_BACKGROUND_NICE))
    try:
        nice = int(raw)
    except ValueError:
        raise PriorityConfigError(f"REELSTREAM_BACKGROUND_NICE={raw!r} is not an integer") from None
    if not 0 <= nice <= 19:
        raise PriorityConfigError(f"REELSTREAM_BACKGROUND_NICE={nice} is outside 0-19")
    return nice


def tier_nice(tier: str) -> int:
    """The niceness a process of `tier` ("edge", "counter", "cassandra", ...) starts with."""
    return background_nice() if tier in BACKGROUND_TIERS else 0


def nice_session(pid: int, nice: int) -> None:
    """Gives the session (autogroup) led by `pid` the niceness `nice`; nothing where the
    kernel has no autogroups (then the process's own niceness is what counts)."""
    with contextlib.suppress(OSError):
        Path(f"/proc/{pid}/autogroup").write_text(f"{nice}\n")
