"""Running ffmpeg/ffprobe without blocking the loop, with a time limit and a clean stop.

Every run goes through `asyncio.create_subprocess_exec` (no shell). When the time limit
passes or the calling task is cancelled, the process gets SIGTERM, then SIGKILL after a
grace period, and is always reaped (`wait()`), so no run leaves a zombie or an orphan
writing files. Output is bounded: stdout up to `max_stdout_bytes` (or consumed line by line
for `-progress`), stderr as a bounded tail kept for error messages.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from origin.errors import ToolFailed

logger = logging.getLogger(__name__)

STOP_GRACE_S = 3.0
STDERR_TAIL_BYTES = 16 * 1024

# Local files and pipes only: a crafted playlist or reference must not make ffmpeg fetch
# URLs or open devices.
PROTOCOL_WHITELIST = "file,pipe"


@dataclass(frozen=True)
class ToolResult:
    returncode: int
    stdout: bytes
    stderr_tail: str


async def run_tool(
    argv: Sequence[str],
    *,
    timeout_s: float,
    max_stdout_bytes: int = 8 * 1024 * 1024,
    on_progress: Callable[[dict[str, str]], None] | None = None,
) -> ToolResult:
    """Runs `argv` to completion within `timeout_s`.

    With `on_progress`, stdout is read as ffmpeg `-progress` blocks (key=value lines ending
    with `progress=...`) and each block is handed over as a dict; otherwise it is collected.

    Raises:
        ToolFailed: the time limit passed (the process was stopped) or stdout overflowed.
    """
    process = await asyncio.create_subprocess_exec(
        *argv,
        stdin=asyncio.subprocess.DEVNULL,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    assert process.stdout is not None
    assert process.stderr is not None
    stderr_tail = bytearray()

    async def drain_stderr() -> None:
        assert process.stderr is not None
        while chunk := await process.stderr.read(4096):
            stderr_tail.extend(chunk)
            del stderr_tail[:-STDERR_TAIL_BYTES]

    async def read_stdout() -> bytes:
        assert process.stdout is not None
        if on_progress is None:
            data = bytearray()
            while chunk := await process.stdout.read(65536):
                if len(data) <= max_stdout_bytes:  # past the bound: read on, keep nothing
                    data.extend(chunk)
            return bytes(data)
        block: dict[str, str] = {}
        while line := await process.stdout.readline():
            key, _, value = line.decode(errors="replace").strip().partition("=")
            block[key] = value
            if key == "progress":
                on_progress(block)
                block = {}
        return b""

    try:
        async with asyncio.timeout(timeout_s):
            stdout, _ = await asyncio.gather(read_stdout(), drain_stderr())
            returncode = await process.wait()
    except TimeoutError as exc:
        raise ToolFailed(
            f"{argv[0]} ran out of its {timeout_s:.0f} s time limit",
            stderr_tail.decode(errors="replace"),
        ) from exc
    finally:
        if process.returncode is None:
            # Shielded: a second cancel must not leave the process running unreaped.
            await asyncio.shield(_stop(process))
    if len(stdout) > max_stdout_bytes:
        raise ToolFailed(f"{argv[0]} wrote more than {max_stdout_bytes} bytes to stdout")
    return ToolResult(returncode, stdout, stderr_tail.decode(errors="replace"))


async def _stop(process: asyncio.subprocess.Process) -> None:
    with contextlib.suppress(ProcessLookupError):
        process.terminate()
    try:
        await asyncio.wait_for(process.wait(), STOP_GRACE_S)
    except TimeoutError:
        with contextlib.suppress(ProcessLookupError):
            process.kill()
        await process.wait()
    logger.info("stopped media tool", extra={"fields": {"pid": process.pid}})
