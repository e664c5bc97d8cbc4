"""Detached server processes tracked by pid files: the part both launchers share.

A launched server must outlive the CLI or test run that started it, so it is spawned through a
shell that backgrounds it and exits (the server is never our child and never our zombie to
reap). Its pid file is trusted only while /proc shows that pid alive, not a zombie (PID 1 here
does not reap orphans), and still running the command we started (pids get reused).
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import time
from collections.abc import Sequence
from pathlib import Path

from reelstream.infra import cpu_priority

REPO_ROOT = Path(__file__).resolve().parents[2]

# `$0` is the log file; the server inherits the shell's new session and is re-parented to init.
_SPAWN_SCRIPT = '"$@" </dev/null >>"$0" 2>&1 & echo $!'
# The same at a lower CPU priority (`$1`): the shell lowers its own first and the server
# inherits it through the one fork and exec above. A `nice` wrapper adds a second exec, and
# a server caught between the two shows an empty command line, so its launcher took it for
# dead (the likely cause of two failed Cassandra starts in a day of benchmark runs).
_NICE_SPAWN_SCRIPT = 'renice -n "$1" -p $$ >/dev/null || exit 1; shift; ' + _SPAWN_SCRIPT
# A higher priority (negative `$1`) needs CAP_SYS_NICE; without it the server starts at the
# shell's own priority, and `spawn_detached` says so.
_RAISED_SPAWN_SCRIPT = 'renice -n "$1" -p $$ >/dev/null 2>&1; shift; ' + _SPAWN_SCRIPT


def var_dir() -> Path:
    """Where launchers keep state: `$REELSTREAM_VAR_DIR`, by default `<repo>/var` (git-ignored)."""
    return Path(os.environ.get("REELSTREAM_VAR_DIR", REPO_ROOT / "var"))


def _exists(pid: int) -> bool:
    """True until every thread of the process has exited.

    The leader of a killed multi-threaded process (Redis, any JVM) shows as a zombie while its
    other threads still hold the files and listening sockets, so all threads are checked.
    """
    try:
        threads = list((Path("/proc") / str(pid) / "task").iterdir())
    except OSError:
        return False
    for thread in threads:
        try:
            state = (thread / "stat").read_text().rsplit(")", 1)[-1].split()[:1]
        except OSError:
            continue  # the thread exited while we looked
        if state not in (["Z"], ["X"]):
            return True
    return False


# A process caught mid-exec (the spawn shell becoming the server) shows an empty command
# line for an instant; an empty one of a live process is read again before it counts.
_MID_EXEC_READS = 5
_MID_EXEC_PAUSE_S = 0.002


def is_running(pid: int, marker: str) -> bool:
    """True when `pid` is alive (not a zombie) and its command line contains `marker`."""
    cmdline_file = Path("/proc") / str(pid) / "cmdline"
    for _ in range(_MID_EXEC_READS):
        try:
            cmdline = cmdline_file.read_bytes()
        except OSError:
            return False
        if cmdline or not _exists(pid):
            break
        time.sleep(_MID_EXEC_PAUSE_S)
    return _exists(pid) and marker.encode() in cmdline


def read_live_pid(pid_file: Path, marker: str) -> int | None:
    """The pid recorded in `pid_file` when that process is still ours and alive, else None."""
    try:
        pid = int(pid_file.read_text().strip())
    except (FileNotFoundError, ValueError):
        return None
    return pid if is_running(pid, marker) else None


def niceness(pid: int) -> int | None:
    """The niceness of `pid` (field 19 of /proc/<pid>/stat), None once it has exited."""
    try:
        stat = (Path("/proc") / str(pid) / "stat").read_text()
    except OSError:
        return None
    return int(stat.rsplit(")", 1)[1].split()[16])


def spawn_detached(
    command: Sequence[str], pid_file: Path, log_file: Path, cwd: Path, nice: int = 0
) -> int:
    """Starts `command` in a new session, appending its output to `log_file`; returns its pid.

    `nice` > 0 starts it, and its session, at that lower CPU priority; `nice` < 0 at that
    higher one where the process may raise priorities, else at 0 with a printed note
    (reelstream/infra/cpu_priority.py). The pid file is written atomically, so a reader
    never sees a partial number.
    """
    log_file.parent.mkdir(parents=True, exist_ok=True)
    with log_file.open("a") as log:
        log.write(f"=== {time.strftime('%Y-%m-%d %H:%M:%S')} starting {command[0]}\n")
    script, priority = _SPAWN_SCRIPT, []
    if nice:
        script, priority = (_NICE_SPAWN_SCRIPT if nice > 0 else _RAISED_SPAWN_SCRIPT), [str(nice)]
    launcher = subprocess.run(
        ["/bin/sh", "-c", script, str(log_file), *priority, *command],
        cwd=cwd,
        capture_output=True,
        text=True,
        check=True,
        start_new_session=True,
    )
    pid = int(launcher.stdout.strip())
    if nice:
        cpu_priority.nice_session(pid, nice)
    if nice < 0 and (running := niceness(pid)) not in (nice, None):
        print(f"{command[0]}: running at nice {running}, not {nice} (raising needs CAP_SYS_NICE)")
    partial = pid_file.with_name(pid_file.name + ".tmp")
    partial.write_text(f"{pid}\n")
    partial.replace(pid_file)
    return pid


def terminate(targets: Sequence[tuple[int, str]], grace_s: float) -> None:
    """SIGTERMs every (pid, marker) at once, SIGKILLs survivors after `grace_s`, waits for exit.

    With `grace_s == 0` the processes are SIGKILLed straight away (a simulated crash).
    """
    # Identity is checked once, up front: an exiting process loses its cmdline before it closes
    # its sockets, so the wait below must watch the pid itself or a restart finds the port busy.
    pids = [pid for pid, marker in targets if is_running(pid, marker)]
    _signal_all(pids, signal.SIGTERM if grace_s > 0 else signal.SIGKILL)
    if not _wait_gone(pids, grace_s):
        _signal_all(pids, signal.SIGKILL)
        if not _wait_gone(pids, 10.0):
            raise RuntimeError(f"processes {[p for p in pids if _exists(p)]} survived SIGKILL")


def _signal_all(pids: Sequence[int], signum: signal.Signals) -> None:
    for pid in pids:
        # It may exit before the signal lands: that is the goal anyway.
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signum)


def _wait_gone(pids: Sequence[int], timeout_s: float) -> bool:
    deadline = time.monotonic() + timeout_s
    while any(_exists(pid) for pid in pids):
        if time.monotonic() >= deadline:
            return False
        time.sleep(0.05)
    return True


def port_open(host: str, port: int, timeout_s: float = 0.5) -> bool:
    """True when something accepts TCP connections on host:port."""
    try:
        with socket.create_connection((host, port), timeout=timeout_s):
            return True
    except OSError:
        return False


def tail(path: Path, lines: int) -> list[str]:
    """The last `lines` lines of a text file; empty when the file does not exist."""
    try:
        return path.read_text(errors="replace").splitlines()[-lines:]
    except FileNotFoundError:
        return []
