"""Media tools run with a time limit and are always stopped and reaped."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

import pytest

from origin.errors import ToolFailed
from origin.media_tool import run_tool


def alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as stat:
            return stat.read().rsplit(")", 1)[-1].split()[0] not in ("Z", "X")
    except FileNotFoundError:
        return False


async def test_a_tool_past_its_time_limit_is_stopped() -> None:
    started = time.monotonic()
    with pytest.raises(ToolFailed, match="time limit"):
        await run_tool(["sleep", "30"], timeout_s=0.5)
    assert time.monotonic() - started < 5


def read_pid(path: Path) -> int | None:
    try:
        text = path.read_text().strip()
    except FileNotFoundError:
        return None
    return int(text) if text else None


async def test_a_cancelled_run_stops_and_reaps_its_process(tmp_path: Path) -> None:
    pid_file = tmp_path / "pid"
    task = asyncio.create_task(
        run_tool(["sh", "-c", f"echo $$ > {pid_file}; exec sleep 30"], timeout_s=60)
    )
    deadline = time.monotonic() + 5
    while (pid := read_pid(pid_file)) is None:
        assert time.monotonic() < deadline
        await asyncio.sleep(0.02)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert not alive(pid)


async def test_progress_blocks_are_handed_over() -> None:
    blocks: list[dict[str, str]] = []
    script = "printf 'out_time_us=1000\\nprogress=continue\\nout_time_us=2000\\nprogress=end\\n'"
    result = await run_tool(["sh", "-c", script], timeout_s=5, on_progress=blocks.append)
    assert result.returncode == 0
    assert [b["out_time_us"] for b in blocks] == ["1000", "2000"]
    assert blocks[-1]["progress"] == "end"
