"""Cassandra starts at a lower CPU priority, its session too; the edges' journal Redis and
the edges at higher ones; the counters at neither."""

from __future__ import annotations

import os
import sys
import time
from pathlib import Path

import pytest

from reelstream.infra import cpu_priority, local_process


def test_cassandra_is_background_and_counters_are_not(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("REELSTREAM_BACKGROUND_NICE", raising=False)
    assert cpu_priority.tier_nice("cassandra") == 10
    assert cpu_priority.tier_nice("counter") == 0
    monkeypatch.setenv("REELSTREAM_BACKGROUND_NICE", "0")
    assert cpu_priority.tier_nice("cassandra") == 0


def test_edges_run_ahead_of_the_counters_unless_told_otherwise(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.delenv("REELSTREAM_EDGE_NICE", raising=False)
    monkeypatch.delenv("REELSTREAM_JOURNAL_NICE", raising=False)
    assert cpu_priority.tier_nice(cpu_priority.JOURNAL_TIER) < cpu_priority.tier_nice("edge")
    assert cpu_priority.tier_nice("edge") == -5 < cpu_priority.tier_nice("counter")
    monkeypatch.setenv("REELSTREAM_EDGE_NICE", "0")
    assert cpu_priority.tier_nice("edge") == 0
    assert cpu_priority.tier_nice(cpu_priority.JOURNAL_TIER) == -10


def test_the_journal_redis_runs_ahead_unless_told_otherwise(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.delenv("REELSTREAM_JOURNAL_NICE", raising=False)
    monkeypatch.delenv("REELSTREAM_EDGE_NICE", raising=False)
    assert cpu_priority.tier_nice(cpu_priority.JOURNAL_TIER) == -10
    monkeypatch.setenv("REELSTREAM_JOURNAL_NICE", "0")
    assert cpu_priority.tier_nice(cpu_priority.JOURNAL_TIER) == 0
    assert cpu_priority.tier_nice("edge") == -5


@pytest.mark.parametrize("raw", ["ten", "-5", "20"])
def test_a_niceness_outside_0_to_19_is_refused(raw: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("REELSTREAM_BACKGROUND_NICE", raw)
    with pytest.raises(cpu_priority.PriorityConfigError, match="REELSTREAM_BACKGROUND_NICE"):
        cpu_priority.tier_nice("cassandra")


@pytest.mark.parametrize("raw", ["high", "5", "-21"])
@pytest.mark.parametrize(
    ("variable", "tier"),
    [("REELSTREAM_JOURNAL_NICE", cpu_priority.JOURNAL_TIER), ("REELSTREAM_EDGE_NICE", "edge")],
)
def test_a_raised_niceness_outside_minus_20_to_0_is_refused(
    raw: str, variable: str, tier: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(variable, raw)
    with pytest.raises(cpu_priority.PriorityConfigError, match=variable):
        cpu_priority.tier_nice(tier)


def niceness_after_exec(pid: int) -> int:
    """Field 19 of /proc/<pid>/stat (the niceness) once `pid` has exec'd python."""
    deadline = time.monotonic() + 10
    python = Path(sys.executable).name[:15]  # comm is cut to 15 characters
    while Path(f"/proc/{pid}/comm").read_text().strip() != python:
        assert time.monotonic() < deadline, f"the process never exec'd {python}"
        time.sleep(0.01)
    niceness = local_process.niceness(pid)
    assert niceness is not None, "the process exited"
    return niceness


@pytest.mark.parametrize("nice", [0, 7, -5])
def test_a_detached_process_runs_at_the_asked_niceness(nice: int, tmp_path: Path) -> None:
    """A raised priority (negative) needs CAP_SYS_NICE; without it the process runs at 0."""
    expected = 0 if nice < 0 and not cpu_priority.can_raise_priority() else nice
    marker = f"--label=nice-test-{nice}-{os.getpid()}"
    pid_file = tmp_path / "sleeper.pid"
    pid = local_process.spawn_detached(
        [sys.executable, "-c", "import time; time.sleep(30)", marker],
        pid_file,
        tmp_path / "sleeper.log",
        tmp_path,
        nice=nice,
    )
    try:
        assert local_process.read_live_pid(pid_file, marker) == pid
        assert niceness_after_exec(pid) == expected
        autogroup = Path(f"/proc/{pid}/autogroup")
        if autogroup.exists():
            assert autogroup.read_text().split()[-1] == str(expected)
    finally:
        local_process.terminate([(pid, marker)], grace_s=5.0)
