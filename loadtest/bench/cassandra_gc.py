"""Cassandra's long GC pauses over a run, read from the node's `system.log`.

Why a soak reports them: a 30-minute soak (docs/reliability.md, session 14) drained at a
third of its rate for 7 minutes while the node's young collections took 200-970 ms each, 68
of them, and no sample the soak took showed why. Cassandra's `GCInspector` logs every pause
longer than `gc_log_threshold` (200 ms by default) at INFO, so the log holds the count.
"""

from __future__ import annotations

import io
import re
import zipfile
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

_PAUSE = re.compile(
    r"(?P<at>\d{4}-\d\d-\d\d \d\d:\d\d:\d\d),\d+ GCInspector\.java:\d+ - "
    r"(?P<collector>[\w ]+?) GC in (?P<ms>\d+)ms\."
)


@dataclass(frozen=True)
class GcPause:
    at: datetime
    """When Cassandra logged it (the node's local time, as `datetime.now()` gives here)."""
    collector: str
    """`G1 Young Generation`, `G1 Old Generation`, ..."""
    ms: int


def parse_pauses(lines: Iterable[str]) -> Iterator[GcPause]:
    """Every GCInspector pause line among `lines`, in order."""
    for line in lines:
        match = _PAUSE.search(line)
        if match:
            yield GcPause(
                datetime.strptime(match["at"], "%Y-%m-%d %H:%M:%S"),
                match["collector"],
                int(match["ms"]),
            )


def log_lines(log_dir: Path) -> Iterator[str]:
    """The node's log, oldest first: rolled `system.log.N.zip` (N=5..1), then `system.log`."""
    for index in range(5, 0, -1):
        rolled = log_dir / f"system.log.{index}.zip"
        if not rolled.exists():
            continue
        with zipfile.ZipFile(rolled) as archive:
            for name in archive.namelist():
                with archive.open(name) as member:
                    yield from io.TextIOWrapper(member, encoding="utf-8", errors="replace")
    current = log_dir / "system.log"
    if current.exists():
        with current.open(encoding="utf-8", errors="replace") as log:
            yield from log


def pauses_between(log_dir: Path, start: datetime, end: datetime) -> list[GcPause]:
    """The logged pauses from `start` to `end` (inclusive, to the second)."""
    first, last = start.replace(microsecond=0), end.replace(microsecond=0)
    return [p for p in parse_pauses(log_lines(log_dir)) if first <= p.at <= last]


def summary(pauses: list[GcPause], start: datetime) -> dict[str, object]:
    """What a results file keeps: count, total and longest pause, and the minutes (from
    `start`) in which pauses came, with their count, so a stretch of them stands out."""
    per_minute: dict[int, int] = {}
    for pause in pauses:
        minute = int((pause.at - start.replace(microsecond=0)).total_seconds() // 60)
        per_minute[minute] = per_minute.get(minute, 0) + 1
    return {
        "pauses_logged": len(pauses),
        "total_ms": sum(p.ms for p in pauses),
        "longest_ms": max((p.ms for p in pauses), default=0),
        "collectors": sorted({p.collector for p in pauses}),
        "pauses_per_minute": {str(minute): n for minute, n in sorted(per_minute.items())},
    }
