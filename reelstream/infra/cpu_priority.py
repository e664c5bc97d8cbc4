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
The edges themselves come next (nice -5), ahead of the counters. Timing each call of an
open-loop phase at 250,000 events/s showed where the rest of the tail came from: the
slowest calls came in bursts on one edge at a time, several calls in a row finishing
together 30-65 ms after they were sent, while the edges' handlers took under 25 ms for
99.7 % of calls and their event loops were late by more than 25 ms in at most 0.2 % of
the samples. So most likely they waited in the edge's gRPC threads, which wait for a core
about four times as long as they run (schedstat at 220,000 events/s, session 22).
Alternated rounds at 250,000 events/s after a 45 s closed-loop peak (session 23,
docs/benchmarks.md): acknowledgment p99 20.8, 21.8, 21.1 and 19.3 ms with the edges at -5
against 27.0, 27.4, 31.4 and 24.2 at 0. The edges then take more of the peak from the
counters, whose commits are on the freshness path: the peak's freshness p99 went to 1,065
and 1,025 ms against 987 and 976, and the edges' forwarding bound went from 25,000 to
20,000 events with it (edge/config.py), which gave 1,008 and 916 against 1,030 and 946.
Giving the load generator -10 instead changed nothing (20.4 and 19.7 ms against 20.9 and
19.1 at 220,000 events/s), nor did a shorter GIL switch interval in the edges (0.5 ms:
22.2 and 22.8 against 19.9 and 24.7).
Raising a priority needs CAP_SYS_NICE (root has it); without it the launcher says so and
the server runs at nice 0.

`REELSTREAM_BACKGROUND_NICE` (0-19, default 10), `REELSTREAM_JOURNAL_NICE` (-20 to 0,
default -10) and `REELSTREAM_EDGE_NICE` (-20 to 0, default -5) set the three niceness
values; 0 for all of them runs every tier at the same priority.
Linux shares the CPU between sessions first (autogroups) and every launched server leads
its own session, so the niceness is given to its session too.
"""

from __future__ import annotations

import contextlib
import os
from pathlib import Path

DEFAULT_BACKGROUND_NICE = 10
DEFAULT_JOURNAL_NICE = -10
DEFAULT_EDGE_NICE = -5
BACKGROUND_TIERS = frozenset({"cassandra"})
JOURNAL_TIER = "journal-redis"
EDGE_TIER = "edge"


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


def edge_nice() -> int:
    """The niceness of the edges: `$REELSTREAM_EDGE_NICE`, default -5."""
    return _nice_from_env("REELSTREAM_EDGE_NICE", DEFAULT_EDGE_NICE, -20, 0)


def tier_nice(tier: str) -> int:
    """The niceness a process of `tier` ("edge", "counter", "cassandra", "journal-redis",
    ...) starts with."""
    if tier == JOURNAL_TIER:
        return journal_nice()
    if tier == EDGE_TIER:
        return edge_nice()
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
