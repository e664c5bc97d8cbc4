"""Running ffmpeg/ffprobe without blocking the loop, with a time limit and a clean stop.

Every run is a `subprocess.Popen` (no shell) whose pipes the event loop reads. When the
time limit passes or the calling task is cancelled, the process gets SIGTERM, then
SIGKILL after a grace period, and is always reaped (`wait()`), so no run leaves a zombie
or an orphan writing files. Output is bounded: stdout up to `max_stdout_bytes` (or consumed
line by line for `-progress`), stderr as a bounded tail kept for error messages.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import subprocess
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import IO

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


class _PipeReader:
    """Feeds a child's pipe into a StreamReader through `loop.add_reader`.

    The file object stays ours and is closed exactly once by `close()`: handing the pipe to
    `connect_read_pipe` would let uvloop close the descriptor number behind the file object,
    and the later close of that object could hit a reused descriptor.
    """

    def __init__(self, pipe: IO[bytes]) -> None:
        self._pipe = pipe
        self._fd = pipe.fileno()
        self._loop = asyncio.get_running_loop()
        self.stream = asyncio.StreamReader(limit=1024 * 1024)
        os.set_blocking(self._fd, False)
        self._loop.add_reader(self._fd, self._on_readable)

    def _on_readable(self) -> None:
        try:
            data = os.read(self._fd, 65536)
        except (BlockingIOError, InterruptedError):
            return
        if data:
            self.stream.feed_data(data)
        else:
            self._loop.remove_reader(self._fd)
            self.stream.feed_eof()

    def close(self) -> None:
        self._loop.remove_reader(self._fd)
        self._pipe.close()


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
    # subprocess.Popen (vfork/posix_spawn), not loop.subprocess_exec: uvloop spawns with
    # fork(), which runs gRPC's fork handlers in a process full of gRPC threads, and about
    # one child in a hundred died of SIGSEGV before reaching exec (no output, status -11).
    process = await asyncio.to_thread(
        subprocess.Popen,
        list(argv),
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    assert process.stdout is not None
    assert process.stderr is not None
    stderr_tail = bytearray()

    async def drain_stderr(stream: asyncio.StreamReader) -> None:
        while chunk := await stream.read(4096):
            stderr_tail.extend(chunk)
            del stderr_tail[:-STDERR_TAIL_BYTES]

    async def read_stdout(stream: asyncio.StreamReader) -> bytes:
        if on_progress is None:
            data = bytearray()
            while chunk := await stream.read(65536):
                if len(data) <= max_stdout_bytes:  # past the bound: read on, keep nothing
                    data.extend(chunk)
            return bytes(data)
        block: dict[str, str] = {}
        while line := await stream.readline():
            key, _, value = line.decode(errors="replace").strip().partition("=")
            block[key] = value
            if key == "progress":
                on_progress(block)
                block = {}
        return b""

    stdout_reader = _PipeReader(process.stdout)
    stderr_reader = _PipeReader(process.stderr)
    try:
        async with asyncio.timeout(timeout_s):
            stdout, _ = await asyncio.gather(
                read_stdout(stdout_reader.stream), drain_stderr(stderr_reader.stream)
            )
            # Both pipes are closed: the process has exited or is about to.
            returncode = await asyncio.to_thread(process.wait)
    except TimeoutError as exc:
        raise ToolFailed(
            f"{argv[0]} ran out of its {timeout_s:.0f} s time limit",
            stderr_tail.decode(errors="replace"),
        ) from exc
    finally:
        stdout_reader.close()
        stderr_reader.close()
        if process.returncode is None:
            # Shielded: a second cancel must not leave the process running unreaped.
            await asyncio.shield(_stop(process))
    if len(stdout) > max_stdout_bytes:
        raise ToolFailed(f"{argv[0]} wrote more than {max_stdout_bytes} bytes to stdout")
    return ToolResult(returncode, stdout, stderr_tail.decode(errors="replace"))


async def _stop(process: subprocess.Popen[bytes]) -> None:
    with contextlib.suppress(ProcessLookupError):
        process.terminate()
    try:
        await asyncio.to_thread(process.wait, STOP_GRACE_S)
    except subprocess.TimeoutExpired:
        with contextlib.suppress(ProcessLookupError):
            process.kill()
        await asyncio.to_thread(process.wait)
    logger.info("stopped media tool", extra={"fields": {"pid": process.pid}})
