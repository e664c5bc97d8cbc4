"""CPU priority of the local stack's tiers when they share one machine.

Edges answer callers that wait (an acknowledgment is due within milliseconds); Cassandra
works behind them in bulk (the counters' group commits, memtable flushes, compactions,
roll-up writes). On a shared machine the launchers start Cassandra at a lower priority, so an
edge (and its journal's Redis) that wakes up for a call gets a core first instead of
queueing behind Cassandra's threads. Cassandra still gets every cycle the others leave.

Measured at about half the closed-loop peak (280,000 events/s, open loop for 30-40 s,
two rounds each; docs/benchmarks.md, session 20), acknowledgment p99 and freshness p99:
- everything at equal priority (earlier runs): 86.9 and 78.2 ms; 976 and 688 ms;
- counters and Cassandra at nice 10: 39.5 and 32.6 ms; 1,130 and 858 ms (the counters
  are on the freshness path: their group commits waited for a core);
- Cassandra alone at nice 10: 26.9 and 32.2 ms; 572 and 696 ms.

`REELSTREAM_BACKGROUND_NICE` (0-19, default 10) sets the niceness; 0 runs every tier at
the same priority. Linux shares the CPU between sessions first (autogroups) and every
launched server leads its own session, so the niceness is given to its session too.
"""

from __future__ import annotations

import contextlib
import os
from pathlib import Path

DEFAULT_BACKGROUND_NICE = 10
BACKGROUND_TIERS = frozenset({"cassandra"})


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
