"""Starts, stops and wipes local Redis servers (Debian `redis-server`) for development and tests.

Each named instance owns the folder `$REELSTREAM_VAR_DIR/redis/<name>/` (config, AOF, logs, pid
file) and its own port, so every edge can have its own Redis. Durability is AOF with
`appendfsync always` and no RDB snapshots: Redis writes and fsyncs the AOF before it replies,
so an acknowledged write survives a `kill -9` (and a power cut), and a restart replays the AOF.
`everysec` is not enough even against `kill -9` on Redis 7.0: while a background fsync runs,
Redis postpones the AOF write for up to 2 s but still replies (seen here: 3 of 5 runs of
tests/integration/test_infra_launchers.py lost acknowledged INCRs). The edge journal
group-commits, so one fsync covers many client calls. Readiness means a
PING answered *and* the AOF fully loaded, never a sleep. Every command is idempotent.
"""

from __future__ import annotations

import argparse
import re
import shutil
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import redis

from reelstream.infra import cpu_priority, local_process

DEFAULT_PORT = 6390
HOST = "127.0.0.1"
INSTALL_HINT = "apt-get install -y redis-server"
_CLI = "python -m reelstream.infra.redis_server"
_NAME = re.compile(r"[A-Za-z0-9_-]+")


class RedisLaunchError(RuntimeError):
    """An instance could not be started or stopped; the message says what to do about it."""


@dataclass(frozen=True)
class RedisInstanceSpec:
    """One named Redis server; everything it writes lives under `instance_dir`."""

    name: str
    """Folder name under the base dir, e.g. `default` or `edge-1`."""
    port: int
    """TCP port on 127.0.0.1; distinct per instance."""
    base_dir: Path
    """Folder holding every instance folder (`$REELSTREAM_VAR_DIR/redis`)."""

    @property
    def instance_dir(self) -> Path:
        return self.base_dir / self.name

    @property
    def config_file(self) -> Path:
        return self.instance_dir / "redis.conf"

    @property
    def pid_file(self) -> Path:
        return self.instance_dir / "redis.pid"

    @property
    def log_file(self) -> Path:
        return self.instance_dir / "redis.log"


def default_base_dir() -> Path:
    """`$REELSTREAM_VAR_DIR/redis`, by default `<repo>/var/redis` (git-ignored)."""
    return local_process.var_dir() / "redis"


def _configured_port(config_file: Path) -> int | None:
    try:
        match = re.search(r"^port (\d+)$", config_file.read_text(), re.MULTILINE)
    except FileNotFoundError:
        return None
    return int(match.group(1)) if match else None


def instance_spec(
    name: str = "default", port: int | None = None, *, base_dir: Path | None = None
) -> RedisInstanceSpec:
    """The instance `name`; without `port`, the port it was last started on (else 6390)."""
    if not _NAME.fullmatch(name):
        raise RedisLaunchError(f"instance name {name!r} must match {_NAME.pattern}")
    base = base_dir or default_base_dir()
    configured = _configured_port(base / name / "redis.conf")
    return RedisInstanceSpec(name, port or configured or DEFAULT_PORT, base)


def render_redis_conf(spec: RedisInstanceSpec) -> str:
    """The instance's redis.conf: loopback only, AOF every second, no RDB snapshots."""
    folder = spec.instance_dir
    # The config path in the process title lets a pid be matched to its instance (pid reuse).
    return f"""\
# Written by reelstream.infra.redis_server at every start; edit the module, not this file.
port {spec.port}
bind {HOST}
protected-mode yes
daemonize no
dir "{folder}"
logfile "{spec.log_file}"
loglevel notice
appendonly yes
appendfsync always
appenddirname "appendonlydir"
save ""
proc-title-template "{{title}} {{listen-addr}} {{server-mode}} {{config-file}}"
"""


def find_redis_server() -> Path:
    """The `redis-server` binary on PATH."""
    found = shutil.which("redis-server")
    if found is None:
        raise RedisLaunchError(f"redis-server is not installed; run: {INSTALL_HINT}")
    return Path(found)


def read_pid(spec: RedisInstanceSpec) -> int | None:
    """The server's pid when that process is alive and really is this instance, else None."""
    return local_process.read_live_pid(spec.pid_file, marker=str(spec.config_file))


def is_ready(spec: RedisInstanceSpec) -> bool:
    """True when the server answers PING and has finished loading its AOF."""
    client = redis.Redis(host=HOST, port=spec.port, socket_connect_timeout=0.5, socket_timeout=2)
    try:
        # PING is answered while the AOF is still loading; INFO says when the data is all back.
        client.ping()
        persistence = client.info("persistence")  # a dict from the sync client
        return isinstance(persistence, dict) and persistence.get("loading") == 0
    except (redis.RedisError, OSError):
        return False
    finally:
        client.close()


def _fail(spec: RedisInstanceSpec, reason: str) -> RedisLaunchError:
    for log in (spec.log_file, spec.instance_dir / "stdout.log"):
        lines = local_process.tail(log, 30)
        if lines:
            print(f"--- last {len(lines)} lines of {log}", *lines, sep="\n", file=sys.stderr)
    return RedisLaunchError(f"redis {spec.name} (port {spec.port}): {reason}")


def wait_until_ready(spec: RedisInstanceSpec, timeout_s: float = 30.0) -> None:
    """Polls PING/INFO until ready; fails early when the server process dies."""
    started = time.monotonic()
    next_report = started + 10.0
    while not is_ready(spec):
        if read_pid(spec) is None:
            raise _fail(spec, "the server exited during start-up")
        now = time.monotonic()
        if now >= started + timeout_s:
            raise _fail(spec, f"not ready within {timeout_s:.0f} s")
        if now >= next_report:
            print(f"waiting for redis {spec.name} ... {now - started:.0f} s", flush=True)
            next_report += 10.0
        time.sleep(0.1)  # poll interval only; readiness is the answer above
    print(f"redis {spec.name} ready on {HOST}:{spec.port} after {time.monotonic() - started:.1f} s")


def up(
    name: str = "default",
    port: int | None = None,
    *,
    base_dir: Path | None = None,
    timeout_s: float = 30.0,
    nice: int = 0,
) -> RedisInstanceSpec:
    """Starts the instance unless it already runs, and returns once it is ready.

    `nice` is the CPU priority it starts at: an edge's journal passes
    `cpu_priority.tier_nice(cpu_priority.JOURNAL_TIER)` (reelstream/infra/cpu_priority.py).
    """
    spec = instance_spec(name, port, base_dir=base_dir)
    pid = read_pid(spec)
    if pid is not None:
        running_port = _configured_port(spec.config_file)
        if running_port != spec.port:
            raise RedisLaunchError(
                f"redis {name} runs on port {running_port}; `{_CLI} down --name {name}` first"
            )
        if is_ready(spec):
            print(f"redis {name} already running: pid {pid}, port {spec.port}")
            return spec
        wait_until_ready(spec, timeout_s)
        return spec
    spec.pid_file.unlink(missing_ok=True)
    if local_process.port_open(HOST, spec.port):
        raise RedisLaunchError(f"port {spec.port} is taken by a process not started as {name}")
    server = find_redis_server()
    spec.instance_dir.mkdir(parents=True, exist_ok=True)
    spec.config_file.write_text(render_redis_conf(spec))
    pid = local_process.spawn_detached(
        [str(server), str(spec.config_file)],
        spec.pid_file,
        spec.instance_dir / "stdout.log",
        cwd=spec.instance_dir,
        nice=nice,
    )
    print(f"started redis {name} pid {pid} on {HOST}:{spec.port}; log {spec.log_file}")
    wait_until_ready(spec, timeout_s)
    return spec


def up_journal(
    name: str, port: int | None = None, *, base_dir: Path | None = None
) -> RedisInstanceSpec:
    """`up` for an edge's journal: at the journal tier's CPU priority, ahead of the rest of
    the stack (every acknowledgment waits for it; reelstream/infra/cpu_priority.py)."""
    return up(name, port, base_dir=base_dir, nice=cpu_priority.tier_nice(cpu_priority.JOURNAL_TIER))


def _stop(spec: RedisInstanceSpec, grace_s: float) -> None:
    pid = read_pid(spec)
    if pid is None:
        print(f"redis {spec.name} is not running")
    else:
        print(f"{'stopping' if grace_s > 0 else 'killing'} redis {spec.name} pid {pid}")
        # SIGTERM makes Redis fsync the AOF and exit; SIGKILL (grace 0) is a crash.
        local_process.terminate([(pid, str(spec.config_file))], grace_s=grace_s)
    spec.pid_file.unlink(missing_ok=True)


def instance_names(base_dir: Path | None = None) -> list[str]:
    """Names of the instances that have a folder (started at least once)."""
    base = base_dir or default_base_dir()
    return sorted(path.parent.name for path in base.glob("*/redis.conf"))


def down(name: str = "default", *, base_dir: Path | None = None, grace_s: float = 10.0) -> None:
    """Stops the instance (SIGTERM, SIGKILL after `grace_s`); a no-op when it is not running."""
    _stop(instance_spec(name, base_dir=base_dir), grace_s)


def kill(name: str = "default", *, base_dir: Path | None = None) -> None:
    """SIGKILLs the instance: a crash, for fault tests (acknowledged writes are in the AOF)."""
    _stop(instance_spec(name, base_dir=base_dir), 0.0)


def restart(
    name: str = "default", *, base_dir: Path | None = None, timeout_s: float = 30.0
) -> RedisInstanceSpec:
    """Stops the instance if it runs, starts it again (replaying its AOF) and waits for it,
    at the CPU priority it was running at (0 when it was not running)."""
    pid = read_pid(instance_spec(name, base_dir=base_dir))
    nice = (local_process.niceness(pid) or 0) if pid is not None else 0
    down(name, base_dir=base_dir)
    return up(name, base_dir=base_dir, timeout_s=timeout_s, nice=nice)


def wipe(name: str = "default", *, base_dir: Path | None = None) -> None:
    """Stops the instance and deletes its data (the AOF folder and any RDB file)."""
    spec = instance_spec(name, base_dir=base_dir)
    _stop(spec, 10.0)
    shutil.rmtree(spec.instance_dir / "appendonlydir", ignore_errors=True)
    for snapshot in spec.instance_dir.glob("*.rdb"):
        snapshot.unlink()
    print(f"wiped redis {name} data under {spec.instance_dir}")


def down_all(*, base_dir: Path | None = None, grace_s: float = 10.0) -> None:
    """Stops every known instance (each edge's Redis included)."""
    for name in instance_names(base_dir):
        down(name, base_dir=base_dir, grace_s=grace_s)


def status(name: str = "default", *, base_dir: Path | None = None) -> str:
    """One line describing the instance: stopped, or its pid and whether it is ready."""
    spec = instance_spec(name, base_dir=base_dir)
    pid = read_pid(spec)
    if pid is None:
        state = "stopped"
    else:
        state = f"running pid {pid}, " + ("ready" if is_ready(spec) else "not answering")
    return f"redis {name} {HOST}:{spec.port}: {state}"


def status_all(*, base_dir: Path | None = None) -> list[str]:
    """One status line per known instance (callers print them)."""
    return [status(name, base_dir=base_dir) for name in instance_names(base_dir)]


def main(argv: Sequence[str] | None = None) -> int:
    """CLI entry point; returns the process exit code."""
    parser = argparse.ArgumentParser(prog=_CLI, description="Run local Redis servers.")
    parser.add_argument("command", choices=("up", "down", "wipe", "status", "kill", "restart"))
    parser.add_argument("--name", default="default", help="instance name (folder and identity)")
    parser.add_argument(
        "--port", type=int, help=f"port for `up` (default: last used, {DEFAULT_PORT})"
    )
    parser.add_argument("--all", action="store_true", help="down/wipe every known instance")
    parser.add_argument("--timeout", type=float, default=30.0, help="readiness timeout, s")
    parser.add_argument(
        "--journal",
        action="store_true",
        help="`up` at the CPU priority of an edge's journal (REELSTREAM_JOURNAL_NICE)",
    )
    args = parser.parse_args(argv)
    try:
        match args.command:
            case "up":
                nice = cpu_priority.tier_nice(cpu_priority.JOURNAL_TIER) if args.journal else 0
                up(args.name, args.port, timeout_s=args.timeout, nice=nice)
            case "down" if args.all:
                down_all()
            case "down":
                down(args.name)
            case "wipe":
                for name in instance_names() if args.all else [args.name]:
                    wipe(name)
            case "status":
                print("\n".join(status_all() or ["no redis instances"]))
            case "kill":
                kill(args.name)
            case "restart":
                restart(args.name, timeout_s=args.timeout)
    except RedisLaunchError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
