"""Starts, stops and wipes real Apache Cassandra nodes for development and integration tests.

One JVM per node. Node N owns the directory `<var>/cassandra/nodeN` (conf, data, logs, pid
file) and the loopback address 127.0.0.N, so several nodes share the default ports on one
machine. Every command is idempotent: `up` leaves a running, answering node alone, `down` on a
stopped node does nothing. Readiness means a CQL query was answered, never a sleep: a JVM still
loading its schema, or one that died, is not "up".
"""

from __future__ import annotations

import argparse
import logging
import shutil
import sys
import time
from collections.abc import Sequence
from pathlib import Path

from cassandra import DriverException
from cassandra.cluster import EXEC_PROFILE_DEFAULT, Cluster, ExecutionProfile, NoHostAvailable
from cassandra.policies import WhiteListRoundRobinPolicy

from reelstream.infra import cpu_priority, local_process
from reelstream.infra.cassandra_runtime import (
    CASSANDRA_VERSION,
    CassandraLaunchError,
    CassandraNodeSpec,
    cluster_specs,
    default_base_dir,
    default_cache_dir,
    find_java,
    jvm_command,
    render_cassandra_yaml,
    render_logback_xml,
    resolve_classpath,
)

__all__ = [
    "CASSANDRA_VERSION",
    "CassandraLaunchError",
    "CassandraNodeSpec",
    "cql_query",
    "cql_release_version",
    "down",
    "kill_node",
    "main",
    "read_pid",
    "resolve_classpath",
    "restart_node",
    "start_node",
    "status",
    "stop_node",
    "up",
    "wait_for_peers",
    "wait_for_storage_port",
    "wait_until_ready",
    "wipe",
]

_CLI = "python -m reelstream.infra.cassandra_node"


def read_pid(spec: CassandraNodeSpec) -> int | None:
    """The node's JVM pid when that process is alive and really is this node, else None."""
    return local_process.read_live_pid(spec.pid_file, marker=spec.config_file.as_uri())


def start_node(spec: CassandraNodeSpec, java: Path, classpath: Sequence[Path]) -> int:
    """Writes the node's config and launches its JVM detached; returns at once with the pid."""
    for folder in (spec.config_file.parent / "triggers", spec.log_dir, spec.data_dir):
        folder.mkdir(parents=True, exist_ok=True)
    spec.config_file.write_text(render_cassandra_yaml(spec))
    (spec.config_file.parent / "logback.xml").write_text(render_logback_xml(spec))
    pid = local_process.spawn_detached(
        jvm_command(spec, java, classpath),
        spec.pid_file,
        spec.log_dir / "stdout.log",
        cwd=spec.node_dir,
        nice=cpu_priority.tier_nice("cassandra"),
    )
    print(
        f"started {spec.name} ({spec.address}, heap {spec.heap_mb} MiB) pid {pid}; "
        f"log {spec.log_dir / 'system.log'}",
        flush=True,
    )
    return pid


def cql_query(
    address: str, query: str, port: int = 9042, timeout_s: float = 3.0
) -> list[tuple[object, ...]] | None:
    """Rows of `query` run on exactly this node, or None when it does not answer (yet)."""
    if not local_process.port_open(address, port):
        return None  # cheap pre-check: the driver is slow to give up on a closed port
    profile = ExecutionProfile(
        load_balancing_policy=WhiteListRoundRobinPolicy([address]), request_timeout=timeout_s
    )
    cluster = Cluster(
        [address],
        port=port,
        protocol_version=5,
        connect_timeout=timeout_s,
        control_connection_timeout=timeout_s,
        execution_profiles={EXEC_PROFILE_DEFAULT: profile},
    )
    try:
        return [tuple(row) for row in cluster.connect().execute(query)]
    except (NoHostAvailable, DriverException, OSError):
        return None  # still booting (or schema not loaded): the caller polls again
    finally:
        cluster.shutdown()


def cql_release_version(spec: CassandraNodeSpec) -> str | None:
    """Cassandra's version as the node reports it over CQL, or None when it does not answer."""
    rows = cql_query(spec.address, "SELECT release_version FROM system.local", spec.cql_port)
    return str(rows[0][0]) if rows else None


def _fail(spec: CassandraNodeSpec, reason: str) -> CassandraLaunchError:
    """An error for `spec` after printing the end of its logs, where the real cause usually is."""
    for log in (spec.log_dir / "system.log", spec.log_dir / "stdout.log"):
        lines = local_process.tail(log, 30)
        if lines:
            print(f"--- last {len(lines)} lines of {log}", *lines, sep="\n", file=sys.stderr)
    return CassandraLaunchError(f"{spec.name} ({spec.address}): {reason}; logs in {spec.log_dir}")


def wait_until_ready(specs: Sequence[CassandraNodeSpec], timeout_s: float = 180.0) -> None:
    """Polls every node over CQL until all answer; fails early when a JVM dies on the way."""
    started = time.monotonic()
    deadline, next_report = started + timeout_s, started + 10.0
    pending = list(specs)
    while pending:
        for spec in list(pending):
            if read_pid(spec) is None:
                raise _fail(spec, "the JVM exited during start-up")
            version = cql_release_version(spec)
            if version is not None:
                pending.remove(spec)
                print(
                    f"{spec.name} ({spec.address}) answers CQL (Cassandra {version}) after "
                    f"{time.monotonic() - started:.1f} s",
                    flush=True,
                )
        now = time.monotonic()
        if pending and now >= deadline:
            raise _fail(pending[0], f"no CQL answer within {timeout_s:.0f} s")
        if pending and now >= next_report:
            names = ", ".join(spec.name for spec in pending)
            print(f"waiting for {names} ... {now - started:.0f} s", flush=True)
            next_report += 10.0
        if pending:
            time.sleep(0.5)  # poll interval only; readiness is the CQL answer above


def wait_for_storage_port(seed: CassandraNodeSpec, timeout_s: float) -> None:
    """Waits for the seed to listen for gossip before non-seeds start.

    A non-seed's shadow gossip round gives up after ring_delay (1 s here) with "Unable to gossip
    with any peers" and the JVM exits, so starting all nodes at once loses that race.
    """
    deadline = time.monotonic() + timeout_s
    while not local_process.port_open(seed.address, seed.storage_port):
        if read_pid(seed) is None:
            raise _fail(seed, "the JVM exited during start-up")
        if time.monotonic() >= deadline:
            raise _fail(seed, f"storage port {seed.storage_port} not listening")
        time.sleep(0.2)


def wait_for_peers(seed: CassandraNodeSpec, peers: int, timeout_s: float = 60.0) -> None:
    """Waits until the seed's `system.peers` lists `peers` nodes (gossip has met everyone)."""
    deadline = time.monotonic() + timeout_s
    while True:
        rows = cql_query(seed.address, "SELECT peer FROM system.peers", seed.cql_port)
        if rows is not None and len(rows) >= peers:
            print(f"{seed.name} sees {len(rows)} peers", flush=True)
            return
        if time.monotonic() >= deadline:
            seen = "no answer" if rows is None else f"{len(rows)} of {peers} peers"
            raise _fail(seed, f"system.peers after {timeout_s:.0f} s: {seen}")
        time.sleep(0.5)


def _size_file(base_dir: Path) -> Path:
    return base_dir / "cluster-size"


def recorded_cluster_size(base_dir: Path) -> int | None:
    """How many nodes the data under `base_dir` was created for, or None when there is none."""
    try:
        return int(_size_file(base_dir).read_text())
    except (FileNotFoundError, ValueError):
        return None


def _known_specs(base_dir: Path) -> list[CassandraNodeSpec]:
    """Specs of the node directories that exist, for the commands that only stop or inspect."""
    count = recorded_cluster_size(base_dir) or len(list(base_dir.glob("node*")))
    specs = cluster_specs(count, base_dir) if count else []
    return [spec for spec in specs if spec.node_dir.is_dir()]


def _node_spec(index: int, base_dir: Path) -> CassandraNodeSpec:
    size = recorded_cluster_size(base_dir)
    if size is None or not 1 <= index <= size:
        raise CassandraLaunchError(
            f"node{index} is not part of a cluster under {base_dir}; run `{_CLI} up` first"
        )
    return cluster_specs(size, base_dir)[index - 1]


def up(
    nodes: int = 1,
    timeout_s: float = 180.0,
    *,
    base_dir: Path | None = None,
    cache_dir: Path | None = None,
) -> list[CassandraNodeSpec]:
    """Brings an `nodes`-node cluster up and returns once every node answers CQL.

    Nodes already running and answering are left alone ("already running"). Data created for
    another cluster size is refused: node 1 would keep gossiping with nodes that are gone.
    """
    base = base_dir or default_base_dir()
    recorded = recorded_cluster_size(base)
    if recorded is not None and recorded != nodes:
        raise CassandraLaunchError(
            f"{base} holds a {recorded}-node cluster; run `{_CLI} wipe` before `up --nodes {nodes}`"
        )
    specs = cluster_specs(nodes, base)
    to_start: list[CassandraNodeSpec] = []
    to_wait: list[CassandraNodeSpec] = []
    for spec in specs:
        pid = read_pid(spec)
        if pid is None:
            spec.pid_file.unlink(missing_ok=True)
            if local_process.port_open(spec.address, spec.cql_port):
                raise CassandraLaunchError(
                    f"{spec.address}:{spec.cql_port} is taken by a process "
                    f"not started from {base}; stop it first"
                )
            to_start.append(spec)
            continue
        version = cql_release_version(spec)
        if version is not None:
            print(f"{spec.name} ({spec.address}) already running: pid {pid}, Cassandra {version}")
        else:
            print(f"{spec.name} ({spec.address}) pid {pid} is starting; waiting for CQL")
            to_wait.append(spec)
    if not to_start and not to_wait:
        return specs
    began = time.monotonic()
    if to_start:
        java, classpath = find_java(), resolve_classpath(cache_dir or default_cache_dir())
        base.mkdir(parents=True, exist_ok=True)
        _size_file(base).write_text(f"{nodes}\n")
        seed = specs[0]
        if seed in to_start:
            start_node(seed, java, classpath)
        non_seeds = [spec for spec in to_start if spec != seed]
        if non_seeds:
            wait_for_storage_port(seed, timeout_s)
        for spec in non_seeds:  # pre-assigned tokens let the non-seeds boot in parallel
            start_node(spec, java, classpath)
    wait_until_ready(to_start + to_wait, timeout_s)
    if nodes > 1:
        wait_for_peers(specs[0], nodes - 1, timeout_s)
    print(f"Cassandra ready ({nodes} node(s)) in {time.monotonic() - began:.1f} s", flush=True)
    return specs


def _stop(specs: Sequence[CassandraNodeSpec], grace_s: float, force: bool = False) -> None:
    running = {spec: pid for spec in specs if (pid := read_pid(spec)) is not None}
    for spec, pid in running.items():
        print(f"{'killing' if force else 'stopping'} {spec.name} ({spec.address}) pid {pid}")
    local_process.terminate(
        [(pid, spec.config_file.as_uri()) for spec, pid in running.items()],
        grace_s=0.0 if force else grace_s,
    )
    for spec in specs:
        spec.pid_file.unlink(missing_ok=True)


def down(*, base_dir: Path | None = None, grace_s: float = 30.0) -> None:
    """Stops every node (SIGTERM, SIGKILL after `grace_s`); a no-op when none is running."""
    specs = _known_specs(base_dir or default_base_dir())
    if not any(read_pid(spec) for spec in specs):
        print("Cassandra is not running")
    _stop(specs, grace_s)


def wipe(*, base_dir: Path | None = None) -> None:
    """Stops every node and deletes all data (logs and config stay for post-mortems)."""
    base = base_dir or default_base_dir()
    down(base_dir=base)
    for spec in _known_specs(base):
        shutil.rmtree(spec.data_dir, ignore_errors=True)
    _size_file(base).unlink(missing_ok=True)
    print(f"wiped Cassandra data under {base}")


def status(*, base_dir: Path | None = None) -> list[str]:
    """One status line per known node: pid and whether CQL answers (callers print them)."""
    base = base_dir or default_base_dir()
    lines = []
    for spec in _known_specs(base):
        pid = read_pid(spec)
        if pid is None:
            state = "stopped"
        elif (version := cql_release_version(spec)) is not None:
            state = f"running pid {pid}, CQL ready (Cassandra {version})"
        else:
            state = f"running pid {pid}, CQL not answering"
        lines.append(f"{spec.name} {spec.address}: {state}")
    return lines


def stop_node(index: int, *, base_dir: Path | None = None, grace_s: float = 30.0) -> None:
    """Stops one node gracefully (SIGTERM, then SIGKILL after `grace_s`)."""
    _stop([_node_spec(index, base_dir or default_base_dir())], grace_s)


def kill_node(index: int, *, base_dir: Path | None = None) -> None:
    """SIGKILLs one node: a crash with no drain and no commitlog flush, for fault tests."""
    _stop([_node_spec(index, base_dir or default_base_dir())], 0.0, force=True)


def restart_node(
    index: int,
    timeout_s: float = 180.0,
    *,
    base_dir: Path | None = None,
    cache_dir: Path | None = None,
) -> CassandraNodeSpec:
    """Stops one node if it runs, starts it on its existing data and waits for CQL."""
    spec = _node_spec(index, base_dir or default_base_dir())
    _stop([spec], 30.0)
    start_node(spec, find_java(), resolve_classpath(cache_dir or default_cache_dir()))
    wait_until_ready([spec], timeout_s)
    return spec


def main(argv: Sequence[str] | None = None) -> int:
    """CLI entry point; returns the process exit code."""
    parser = argparse.ArgumentParser(prog=_CLI, description="Run local Apache Cassandra nodes.")
    parser.add_argument(
        "command", choices=("up", "down", "wipe", "status", "stop", "kill", "restart")
    )
    parser.add_argument("--nodes", type=int, default=1, help="cluster size for `up`")
    parser.add_argument("--node", type=int, default=1, help="node index for stop/kill/restart")
    parser.add_argument("--timeout", type=float, default=180.0, help="readiness timeout, s")
    args = parser.parse_args(argv)
    # Refused connections are the normal state while a node boots: keep the driver quiet.
    logging.getLogger("cassandra").setLevel(logging.CRITICAL)
    try:
        match args.command:
            case "up":
                up(args.nodes, args.timeout)
            case "down":
                down()
            case "wipe":
                wipe()
            case "status":
                print("\n".join(status() or [f"no Cassandra nodes under {default_base_dir()}"]))
            case "stop":
                stop_node(args.node)
            case "kill":
                kill_node(args.node)
            case "restart":
                restart_node(args.node, args.timeout)
    except CassandraLaunchError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
