"""Samples RSS and CPU of the benchmark's processes once a second, in a background thread.

The machine is shared (2 cores; other work may run beside the benchmark), so besides each
tracked process it records the whole machine's busy CPU: "foreign" CPU, what untracked
processes used, tells whether a figure was measured on a quiet machine.
"""

from __future__ import annotations

import statistics
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field

import psutil

MIB = 1024 * 1024


@dataclass
class _Sample:
    at: float
    rss_mib: dict[str, float]
    cpu_cores: dict[str, float]
    system_cores: float


@dataclass
class PhaseWindow:
    label: str
    start: float
    end: float = float("inf")


@dataclass
class ProcessMonitor:
    """Tracks named processes; `phase()` marks the windows that summaries refer to."""

    interval_s: float = 1.0
    _processes: dict[str, psutil.Process] = field(default_factory=dict)
    _samples: list[_Sample] = field(default_factory=list)
    phases: list[PhaseWindow] = field(default_factory=list)
    _lock: threading.Lock = field(default_factory=threading.Lock)
    _stop: threading.Event = field(default_factory=threading.Event)
    _thread: threading.Thread | None = None
    quiet_waits: dict[str, float] = field(default_factory=dict)
    """Seconds waited for a quiet machine before each phase (see `wait_quiet`)."""
    origin: float = field(default_factory=time.monotonic)
    """When sampling started (`time.monotonic()`); plots count seconds from here."""

    def track(self, name: str, pid: int) -> None:
        try:
            process = psutil.Process(pid)
            process.cpu_percent(None)  # the first call only primes the counter
        except psutil.Error:
            return
        with self._lock:
            self._processes[name] = process

    def untrack(self, prefix: str) -> None:
        with self._lock:
            for name in [n for n in self._processes if n.startswith(prefix)]:
                del self._processes[name]

    def start(self) -> None:
        self.origin = time.monotonic()
        psutil.cpu_percent(None)
        self._thread = threading.Thread(target=self._run, name="process-monitor", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=5)

    def _run(self) -> None:
        cores = psutil.cpu_count() or 1
        while not self._stop.wait(self.interval_s):
            rss: dict[str, float] = {}
            cpu: dict[str, float] = {}
            with self._lock:
                processes = dict(self._processes)
            for name, process in processes.items():
                try:
                    rss[name] = process.memory_info().rss / MIB
                    cpu[name] = process.cpu_percent(None) / 100
                except psutil.Error:
                    continue
            busy = psutil.cpu_percent(None) / 100 * cores
            with self._lock:
                self._samples.append(_Sample(time.monotonic(), rss, cpu, busy))

    @contextmanager
    def phase(self, label: str) -> Iterator[PhaseWindow]:
        window = PhaseWindow(label, time.monotonic())
        self.phases.append(window)
        try:
            yield window
        finally:
            window.end = time.monotonic()

    def recent_foreign_cores(self, samples: int = 5) -> float | None:
        """Mean CPU used by untracked processes over the last `samples` seconds."""
        with self._lock:
            recent = self._samples[-samples:]
        if len(recent) < samples:
            return None
        return statistics.fmean(
            max(0.0, s.system_cores - sum(s.cpu_cores.values())) for s in recent
        )

    def wait_quiet(self, label: str, max_wait_s: float, threshold_cores: float) -> float:
        """Waits (at most `max_wait_s`) until other work on the machine uses at most
        `threshold_cores`; returns the seconds waited. A shared machine is not fixed by
        this, only made less likely to skew a phase; the phase's foreign CPU is reported."""
        started = time.monotonic()
        told = False
        while time.monotonic() - started < max_wait_s:
            foreign = self.recent_foreign_cores()
            if foreign is not None and foreign <= threshold_cores:
                break
            if foreign is not None and not told:
                print(
                    f"  waiting up to {max_wait_s:.0f} s for other work to quiet down before "
                    f"{label} (foreign CPU {foreign:.2f} cores)",
                    flush=True,
                )
                told = True
            time.sleep(1.0)
        waited = time.monotonic() - started
        self.quiet_waits[label] = waited
        return waited

    def mark(self, label: str, start: float, end: float) -> None:
        """Records a phase measured elsewhere (times on the `time.monotonic()` clock)."""
        self.phases.append(PhaseWindow(label, start, end))

    def _in(self, labels: list[str]) -> list[_Sample]:
        windows = [w for w in self.phases if w.label in labels]
        with self._lock:
            return [s for s in self._samples if any(w.start <= s.at <= w.end for w in windows)]

    def cpu_summary(self, label: str) -> dict[str, float]:
        """Mean CPU (in cores) per process, the machine's total and the foreign share."""
        samples = self._in([label])
        if not samples:
            return {}
        names = sorted({n for s in samples for n in s.cpu_cores})
        result = {n: statistics.fmean(s.cpu_cores.get(n, 0.0) for s in samples) for n in names}
        system = statistics.fmean(s.system_cores for s in samples)
        result["machine"] = system
        result["foreign"] = max(0.0, system - sum(result[n] for n in names))
        return result

    def rss_summary(self, labels: list[str], names: list[str]) -> dict[str, dict[str, float]]:
        """Peak RSS per process over the phases `labels`, and its first/last-10% medians."""
        samples = self._in(labels)
        summary: dict[str, dict[str, float]] = {}
        for name in names:
            series = [s.rss_mib[name] for s in samples if name in s.rss_mib]
            if not series:
                continue
            tenth = max(1, len(series) // 10)
            first = statistics.median(series[:tenth])
            last = statistics.median(series[-tenth:])
            summary[name] = {
                "peak_mib": max(series),
                "first10_median_mib": first,
                "last10_median_mib": last,
                "growth_pct": (last - first) / first * 100 if first else 0.0,
                "samples": float(len(series)),
            }
        return summary

    def rss_series(self, name: str) -> list[tuple[float, float]]:
        """(seconds since the first sample, RSS MiB) of one process, for plots."""
        with self._lock:
            return [
                (s.at - self.origin, s.rss_mib[name]) for s in self._samples if name in s.rss_mib
            ]
