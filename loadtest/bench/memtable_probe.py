"""Cassandra's memtable off-heap bytes during a soak, read over JMX by `jmx/MemtableProbe.java`.

Why the soak needs it: the node's memtables live off the heap (`offheap_objects`, up to
`memtable_offheap_space`), in memory Cassandra mallocs itself. When a memtable flushes, its
regions go back to the C allocator, which keeps them for the next ones (seen on the soak's
node: after `nodetool flush` took 300 MB of memtables to 0, RSS stayed put; refilling them
added 58 MiB). So the node's RSS follows the pool's largest fill so far, and one hour saw
that fill grow once, until its first flush at ~47 minutes (docs/reliability.md, session 10).
RSS less that peak is what must stay flat; the pool itself cannot grow past its setting (a
full pool blocks writes, which the soak sees as a growing journal).
"""

from __future__ import annotations

import asyncio
import contextlib
from dataclasses import dataclass
from pathlib import Path

from reelstream.infra.cassandra_runtime import find_java

PROBE_SOURCE = Path(__file__).with_name("jmx") / "MemtableProbe.java"
MIB = 1024 * 1024


@dataclass
class MemtableReading:
    live_mib: float
    """Off-heap bytes held by every table's memtables at the last reading."""
    peak_mib: float
    """The largest reading so far: what the allocator may still hold."""


class MemtableProbe:
    """Keeps the latest and the largest memtable off-heap reading of one node."""

    def __init__(self, host: str, jmx_port: int, interval_s: float) -> None:
        self._command = [
            str(find_java()),
            str(PROBE_SOURCE),
            host,
            str(jmx_port),
            str(interval_s),
        ]
        self._process: asyncio.subprocess.Process | None = None
        self._reader: asyncio.Task[None] | None = None
        self._reading: MemtableReading | None = None
        self.last_line = ""
        """The probe's last output line: its error when it died."""

    async def start(self) -> None:
        self._process = await asyncio.create_subprocess_exec(
            *self._command,
            stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.STDOUT,
        )
        self._reader = asyncio.create_task(self._read(self._process))

    async def _read(self, process: asyncio.subprocess.Process) -> None:
        assert process.stdout is not None
        async for line in process.stdout:
            self.last_line = line.decode(errors="replace").strip()
            parsed = parse_line(self.last_line)
            if parsed is None:
                continue
            live = parsed / MIB
            peak = max(live, self._reading.peak_mib if self._reading else 0.0)
            self._reading = MemtableReading(round(live, 1), round(peak, 1))

    def reading(self) -> MemtableReading | None:
        """The latest reading; None before the first one or after the probe died."""
        if self._process is None or self._process.returncode is not None:
            return None
        return self._reading

    async def close(self) -> None:
        """Closes the probe's stdin (it exits on its own), then waits for it, killing it
        after 5 s."""
        process, self._process = self._process, None
        if process is None:
            return
        if process.stdin is not None:
            process.stdin.close()
        try:
            await asyncio.wait_for(process.wait(), 5.0)
        except TimeoutError:
            process.kill()
            await process.wait()
        if self._reader is not None:
            self._reader.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._reader


def parse_line(line: str) -> int | None:
    """Bytes from one "<unix ms> <bytes>" line; None for anything else (a JVM warning)."""
    parts = line.split()
    if len(parts) != 2 or not all(part.isdigit() for part in parts):
        return None
    return int(parts[1])
