"""Whether a launched process still runs: one caught mid-exec (its command line empty for an
instant) is not taken for dead; a process that is gone, or is someone else's, is."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from reelstream.infra import local_process

MARKER = f"--label=liveness-test-{os.getpid()}"


@pytest.fixture
def sleeper() -> Iterator[int]:
    process = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(30)", MARKER])
    try:
        yield process.pid
    finally:
        process.kill()
        process.wait()


def test_a_process_whose_command_line_reads_empty_once_is_running(
    sleeper: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    real_read_bytes = Path.read_bytes
    empty_reads = {"left": 1}

    def read_bytes(path: Path) -> bytes:
        if path.name == "cmdline" and empty_reads["left"]:
            empty_reads["left"] -= 1
            return b""  # as /proc shows a process in the middle of exec
        return real_read_bytes(path)

    monkeypatch.setattr(Path, "read_bytes", read_bytes)
    assert local_process.is_running(sleeper, MARKER)
    assert empty_reads["left"] == 0


def test_a_gone_or_foreign_process_is_not_running(sleeper: int) -> None:
    assert local_process.is_running(sleeper, MARKER)
    assert not local_process.is_running(sleeper, "--label=someone-else")
    gone = subprocess.Popen([sys.executable, "-c", "pass", MARKER])
    gone.wait()
    assert not local_process.is_running(gone.pid, MARKER)
