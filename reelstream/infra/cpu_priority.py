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

The edges' journal Redis runs ahead of everything else (nice -10). Every acknowledgment
waits for a round trip to it, and it runs in short bursts (at 220,000 events/s, ~750 a
second of ~45 us each: 0.03 cores), so letting it run first costs the others little.
Open loop at 220,000 events/s for 60 s after a closed-loop peak, two alternated rounds
(docs/benchmarks.md, session 22): it waited for a core 4.8-5.9 s a minute against 7.3-8.3
s at nice 0, and the acknowledgment p99 was 21.2 and 22.0 ms against 28.9 and 25.9. The
closed-loop peak before it had its freshness p99 33 and 56 ms higher (1,023 and 1,080 ms).
Raising a priority needs CAP_SYS_NICE (root has it); without it the launcher says so and
the server runs at nice 0.

`REELSTREAM_BACKGROUND_NICE` (0-19, default 10) and `REELSTREAM_JOURNAL_NICE` (-20 to 0,
default -10) set the two niceness values; 0 for both runs every tier at the same priority.
Linux shares the CPU between sessions first (autogroups) and every launched server leads
its own session, so the niceness is given to its session too.
"""

from __future__ import annotations

import contextlib
import os
from pathlib import Path

DEFAULT_BACKGROUND_NICE = 10
DEFAULT_JOURNAL_NICE = -10
BACKGROUND_TIERS = frozenset({"cassandra"})
JOURNAL_TIER = "journal-redis"


class PriorityConfigError(ValueError):
    """REELSTREAM_BACKGROUND_NICE or REELSTREAM_JOURNAL_NICE is outside its range."""


def _nice_from_env(variable: str, default: int, lowest: int, highest: int) -> int:
    raw = os.environ.get(variable, str(default))
    try:
        nice = int(raw)
    except ValueError:
        raise PriorityConfigError(f"{variable}={raw!r} is not an integer") from None
    if not lowest <= nice <= highest:
        raise PriorityConfigError(f"{variable}={nice} is outside {lowest}-{highest}")
    return nice


def background_nice() -> int:
    """The niceness of background tiers: `$REELSTREAM_BACKGROUND_NICE`, default 10."""
    return _nice_from_env("REELSTREAM_BACKGROUND_NICE", DEFAULT_BACKGROUND_NICE, 0, 19)


def journal_nice() -> int:
    """The niceness of the edges' journal Redis: `$REELSTREAM_JOURNAL_NICE`, default -10."""
    return _nice_from_env("REELSTREAM_JOURNAL_NICE", DEFAULT_JOURNAL_NICE, -20, 0)


def tier_nice(tier: str) -> int:
    """The niceness a process of `tier` ("edge", "counter", "cassandra", "journal-redis",
    ...) starts with."""
    if tier == JOURNAL_TIER:
        return journal_nice()
    return background_nice() if tier in BACKGROUND_TIERS else 0


def can_raise_priority() -> bool:
    """Whether this process may raise priorities: CAP_SYS_NICE (bit 23) is among its
    effective capabilities, as it is for root."""
    with contextlib.suppress(OSError):
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("CapEff:"):
                return bool(int(line.split()[1], 16) >> 23 & 1)
    return False


def nice_session(pid: int, nice: int) -> None:
    """Gives the session (autogroup) led by `pid` the niceness `nice`; nothing where the
    kernel has no autogroups (then the process's own niceness is what counts)."""
    with contextlib.suppress(OSError):
        Path(f"/proc/{pid}/autogroup").write_text(f"{nice}\n")
