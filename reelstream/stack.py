"""The local stack on loopback: Cassandra, one Redis per edge, origin, counter processes,
spam filter, moderation, edges.

`scale` resizes it while it runs: new counter processes join and take their share of the
logical shards; removed ones (highest index first) are SIGTERMed and hand their shards off
before they exit; removed edges are drained (they stop taking work, flush their journal to
the counters, then exit; their Redis keeps anything left for the next start).

Unless told otherwise, `up` also starts the autoscaler (`python -m reelstream.autoscaler
--supervised`) as one more tracked process, last, once every service is SERVING; it sizes
the edges (and, with a counter ceiling, the counter processes) within the bounds of
`reelstream/scaling_bounds.py`. Stopping the stack stops it first, so it never "repairs" a
shutdown. An operator's `scale` and `drain` move its bounds (the asked size becomes the
floor) under the scaling lock, so it does not undo them.

Processes are detached (they outlive the CLI), tracked by pid files under
`$REELSTREAM_VAR_DIR/run`, log to `$REELSTREAM_VAR_DIR/log/<name>.log`, and are considered
up only when their gRPC health check answers SERVING.

Services talk mutual TLS with the certificates of `make certs` (made here when missing);
`REELSTREAM_PLAINTEXT=1` in the environment of `reelstream up` runs them in plaintext
instead (docs/security.md). Health checks present the `admin` identity.
"""

from __future__ import annotations

import contextlib
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc

from protos import counter_pb2, counter_pb2_grpc
from reelstream.caller_policy import ADMIN
from reelstream.channels import open_blocking_channel
from reelstream.infra import cassandra_node, cpu_priority, dev_certs, local_process, redis_server
from reelstream.infra.cassandra_runtime import default_base_dir
from reelstream.scaling_bounds import (
    EDGE_CPU_TARGET,
    LOCAL_MAX_COUNTERS,
    LOCAL_MAX_EDGES,
    StackBounds,
    TierBounds,
    initial_bounds,
    read_bounds,
    remove_bounds,
    scaling_lock,
    write_bounds,
)
from reelstream.security_settings import security_settings
from reelstream.transport_security import TransportSecurityError

REPO_ROOT = Path(__file__).resolve().parent.parent


def var_dir() -> Path:
    return default_base_dir().parent


@dataclass(frozen=True)
class ServiceSpec:
    """One Reelstream process of the local stack."""

    name: str
    module: str
    grpc_port: int
    metrics_port: int
    env: dict[str, str]
    args: tuple[str, ...] = ()
    """Command-line arguments after the marker (the services take none)."""

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.grpc_port}"

    @property
    def pid_file(self) -> Path:
        return var_dir() / "run" / f"{self.name}.pid"

    @property
    def log_file(self) -> Path:
        return var_dir() / "log" / f"{self.name}.log"

    @property
    def marker(self) -> str:
        return f"--label={self.name}"


def edge_redis_port(index: int) -> int:
    return 6390 + index


def plan(edges: int, shards: int) -> list[ServiceSpec]:
    """The processes of a stack with `edges` edges and `shards` counter processes (which
    share the fixed set of logical shards, REELSTREAM_*_SHARD_COUNT, default 4)."""
    counters = [f"127.0.0.1:{50061 + i}" for i in range(shards)]
    specs = [
        ServiceSpec(
            "origin",
            "origin",
            50071,
            9171,
            {
                "REELSTREAM_ORIGIN_GRPC_ADDRESS": "127.0.0.1:50071",
                "REELSTREAM_ORIGIN_METRICS_PORT": "9171",
                "REELSTREAM_ORIGIN_MEDIA_DIR": str(var_dir() / "media"),
                "REELSTREAM_ORIGIN_MODERATION_ADDRESS": "127.0.0.1:50091",
                # The moderator console (127.0.0.1:8070) runs once a moderator exists:
                # `make console-moderator NAME=alice` writes this file.
                **(
                    {"REELSTREAM_ORIGIN_CONSOLE_MODERATORS_FILE": str(moderators)}
                    if (moderators := var_dir() / "console-moderators").is_file()
                    else {}
                ),
            },
        )
    ]
    for i in range(shards):
        specs.append(
            ServiceSpec(
                f"counter-{i}",
                "counter",
                50061 + i,
                9161 + i,
                {
                    "REELSTREAM_COUNTER_NAME": f"counter-{i}",
                    "REELSTREAM_COUNTER_GRPC_ADDRESS": counters[i],
                    "REELSTREAM_COUNTER_METRICS_PORT": str(9161 + i),
                    "REELSTREAM_COUNTER_OWNER_ID": f"counter-{i}",
                },
            )
        )
    # The spam filter (spam/): edges forward accepted events to it and screen inline with
    # its blocklist; its verdicts reach the shards as corrections.
    specs.append(
        ServiceSpec(
            "spam",
            "spam",
            50081,
            9181,
            {
                "REELSTREAM_SPAM_GRPC_ADDRESS": "127.0.0.1:50081",
                "REELSTREAM_SPAM_METRICS_PORT": "9181",
                "REELSTREAM_SPAM_COUNTER_ADDRESSES": ",".join(counters),
                "REELSTREAM_SPAM_ORIGIN_ADDRESS": "127.0.0.1:50071",
            },
        )
    )
    # Moderation (moderation/): analyses uploads before they are published, runs reports,
    # the review queue and takedowns (purging every edge).
    specs.append(
        ServiceSpec(
            "moderation",
            "moderation",
            50091,
            9191,
            {
                "REELSTREAM_MODERATION_GRPC_ADDRESS": "127.0.0.1:50091",
                "REELSTREAM_MODERATION_METRICS_PORT": "9191",
                "REELSTREAM_MODERATION_COUNTER_ADDRESSES": ",".join(counters),
            },
        )
    )
    for j in range(edges):
        specs.append(
            ServiceSpec(
                f"edge-{j}",
                "edge",
                50051 + j,
                9151 + j,
                {
                    "REELSTREAM_EDGE_NAME": f"edge-{j}",
                    "REELSTREAM_EDGE_GRPC_ADDRESS": f"127.0.0.1:{50051 + j}",
                    "REELSTREAM_EDGE_METRICS_PORT": str(9151 + j),
                    "REELSTREAM_EDGE_REDIS_URL": f"redis://127.0.0.1:{edge_redis_port(j)}/0",
                    "REELSTREAM_EDGE_COUNTER_ADDRESSES": ",".join(counters),
                    "REELSTREAM_EDGE_HTTP_ADDRESS": f"127.0.0.1:{8080 + j}",
                    "REELSTREAM_EDGE_SPAM_ADDRESS": "127.0.0.1:50081",
                    "REELSTREAM_EDGE_SPAM_SCREEN_ENABLED": "true",
                    "REELSTREAM_EDGE_EDGE_HTTP_URLS": ",".join(
                        f"edge-{k}=http://127.0.0.1:{8080 + k}" for k in range(edges)
                    ),
                },
            )
        )
    return specs


def health(address: str, timeout_s: float = 1.0) -> str:
    """The overall gRPC health status of a server, or why it could not be read."""
    try:
        with open_blocking_channel(address, ADMIN) as channel:
            stub = health_pb2_grpc.HealthStub(channel)
            response = stub.Check(health_pb2.HealthCheckRequest(service=""), timeout=timeout_s)
            return str(health_pb2.HealthCheckResponse.ServingStatus.Name(response.status))
    except grpc.RpcError as exc:
        return f"DOWN ({exc.code().name})"
    except TransportSecurityError as exc:
        return f"UNKNOWN ({exc})"


def start_service(spec: ServiceSpec) -> int:
    """Starts `spec` unless it already runs; returns its pid."""
    pid = local_process.read_live_pid(spec.pid_file, spec.marker)
    if pid is not None:
        return pid
    spec.pid_file.parent.mkdir(parents=True, exist_ok=True)
    command = [
        "env",
        *(f"{k}={v}" for k, v in spec.env.items()),
        sys.executable,
        "-m",
        spec.module,
        spec.marker,
        *spec.args,
    ]
    return local_process.spawn_detached(
        command, spec.pid_file, spec.log_file, REPO_ROOT, nice=cpu_priority.tier_nice(spec.module)
    )


def wait_serving(specs: list[ServiceSpec], timeout_s: float) -> None:
    deadline = time.monotonic() + timeout_s
    waiting = list(specs)
    while waiting:
        waiting = [s for s in waiting if health(s.address) != "SERVING"]
        for spec in waiting:
            # A process caught mid-exec is not missed here: `local_process.is_running`
            # reads its empty command line again.
            if local_process.read_live_pid(spec.pid_file, spec.marker) is None:
                log = "\n".join(local_process.tail(spec.log_file, 20))
                raise RuntimeError(f"{spec.name} exited during start-up; its log ends:\n{log}")
        if waiting and time.monotonic() > deadline:
            names = ", ".join(s.name for s in waiting)
            raise RuntimeError(f"not SERVING after {timeout_s:.0f} s: {names} (see var/log)")
        if waiting:
            time.sleep(0.3)


@dataclass(frozen=True)
class AutoscalerSettings:
    """How `up` runs the stack's autoscaler."""

    max_edges: int | None = None
    """Most edges; None: `scaling_bounds.default_max_edges` of the edges asked."""
    max_counters: int | None = None
    """Most counter processes; None pins them at the count asked."""
    interval_s: float = 15.0
    """Seconds between the autoscaler's rounds."""
    scale_down_window_s: float = 300.0
    """Scale-down stabilisation window of both tiers."""
    edge_cpu_target: float = EDGE_CPU_TARGET
    """CPU cores per edge the autoscaler sizes the edges on."""

    def args(self) -> tuple[str, ...]:
        return (
            "--supervised",
            "--interval",
            f"{self.interval_s:g}",
            "--scale-down-window",
            f"{self.scale_down_window_s:g}",
            "--edge-cpu-target",
            f"{self.edge_cpu_target:g}",
        )


def autoscaler_spec(settings: AutoscalerSettings | None = None) -> ServiceSpec:
    """The autoscaler as a process of the stack: no gRPC or metrics port, a pid file and a
    log file like the services (`make logs SERVICE=autoscaler`)."""
    return ServiceSpec(
        "autoscaler", "reelstream.autoscaler", 0, 0, {}, settings.args() if settings else ()
    )


def up(
    edges: int = 2,
    shards: int = 2,
    timeout_s: float = 300.0,
    autoscaler: AutoscalerSettings | None = None,
    shared_cassandra: bool = False,
) -> list[ServiceSpec]:
    """Brings the whole stack up (idempotent) and waits until every service is SERVING;
    then starts the autoscaler with `autoscaler`'s settings (bounds: at least `edges` and
    `shards`), or, with None, stops one a previous `up` started (a fixed-size stack).
    `shared_cassandra`: use the node answering on 127.0.0.1:9042 (the test suite's) instead
    of starting the stack's own."""
    bounds = None
    if autoscaler is not None:
        try:
            bounds = initial_bounds(edges, shards, autoscaler.max_edges, autoscaler.max_counters)
        except ValueError as exc:
            raise RuntimeError(str(exc)) from exc
    if not security_settings().plaintext:
        made = dev_certs.ensure_certificates()
        if made:
            print(f"made certificates for {', '.join(made)} in {dev_certs.default_certs_dir()}")
    if not shared_cassandra:
        cassandra_node.up(1, timeout_s=timeout_s)
    elif not local_process.port_open("127.0.0.1", 9042):
        raise RuntimeError("no Cassandra answers on 127.0.0.1:9042 to share")
    # A running autoscaler that is not wanted as it runs is stopped before the lock is
    # taken: its round may be waiting for the lock, and it stops only between rounds.
    current = autoscaler_spec()
    running = local_process.read_live_pid(current.pid_file, current.marker)
    if running is not None and (autoscaler is None or not _runs_with(running, autoscaler.args())):
        stop_autoscaler()
    with scaling_lock(WAITING_FOR_AUTOSCALER):
        for j in range(edges):
            redis_server.up_journal(f"edge-{j}", edge_redis_port(j))
        specs = plan(edges, shards)
        for spec in specs:
            start_service(spec)
            print(f"started {spec.name:<10} grpc {spec.address}", flush=True)
        wait_serving(specs, timeout_s)
        if autoscaler is not None and bounds is not None:
            _start_autoscaler(autoscaler, bounds)
    return specs


WAITING_FOR_AUTOSCALER = "waiting for the autoscaler's resize in progress to finish"


def _start_autoscaler(settings: AutoscalerSettings, bounds: StackBounds) -> None:
    """Writes the bounds and starts the autoscaler unless it runs (a running one reads the
    new bounds at its next round). A restarted one seeds its history with the running
    counts, so it shrinks nothing before a whole scale-down window has passed."""
    spec = autoscaler_spec(settings)
    write_bounds(bounds, "up")
    pid = local_process.read_live_pid(spec.pid_file, spec.marker)
    if pid is None:
        start_service(spec)
        print(f"started autoscaler ({bounds.describe()})", flush=True)
    else:
        print(f"autoscaler already running, pid {pid} ({bounds.describe()})", flush=True)


def _runs_with(pid: int, args: tuple[str, ...]) -> bool:
    """True when process `pid`'s command line ends with `args`."""
    try:
        raw = (Path("/proc") / str(pid) / "cmdline").read_bytes()
    except OSError:
        return False
    cmdline = [part.decode(errors="replace") for part in raw.split(b"\0") if part]
    return cmdline[-len(args) :] == list(args)


def stop_autoscaler(grace_s: float = 15.0) -> None:
    """Stops the stack's autoscaler, if one runs, and forgets its bounds."""
    spec = autoscaler_spec()
    pid = local_process.read_live_pid(spec.pid_file, spec.marker)
    if pid is not None:
        local_process.terminate([(pid, spec.marker)], grace_s)
        print("stopped autoscaler", flush=True)
    spec.pid_file.unlink(missing_ok=True)
    remove_bounds()


def running_specs() -> list[ServiceSpec]:
    """Specs of the services that have a pid file (whatever their size settings were)."""
    run_dir = var_dir() / "run"
    names = sorted(p.stem for p in run_dir.glob("*.pid")) if run_dir.exists() else []
    # Indices may have holes (`make drain NODE=counter-0`): plan up to the highest one.
    edges = max((int(n[5:]) + 1 for n in names if n.startswith("edge-")), default=0)
    shards = max((int(n[8:]) + 1 for n in names if n.startswith("counter-")), default=0)
    return [s for s in plan(edges, shards) if s.name in names]


def stop_services(grace_s: float = 15.0) -> None:
    """Stops the autoscaler (so it does not restart what is stopping), then the running
    services, edges first; leaves Redis and Cassandra running."""
    stop_autoscaler(grace_s)
    specs = running_specs()
    _stop([s for s in specs if s.module == "edge"], grace_s)
    _stop([s for s in specs if s.module != "edge"], grace_s)


def _stop(specs: list[ServiceSpec], grace_s: float) -> None:
    targets = []
    for spec in specs:
        pid = local_process.read_live_pid(spec.pid_file, spec.marker)
        if pid is not None:
            targets.append((pid, spec.marker))
    local_process.terminate(targets, grace_s)
    for spec in specs:
        spec.pid_file.unlink(missing_ok=True)
        print(f"stopped {spec.name}", flush=True)


def down(grace_s: float = 15.0, shared_cassandra: bool = False) -> None:
    """Stops the autoscaler, edges (they flush to the shards), then shards and origin, Redis,
    and Cassandra unless `shared_cassandra` (a node others use, like the test suite's)."""
    stop_services(grace_s)
    redis_server.down_all()
    if not shared_cassandra:
        cassandra_node.down()


STOP_GRACE_S = 30.0


def _index(spec: ServiceSpec) -> int:
    return int(spec.name.rsplit("-", 1)[1])


def _running(module: str) -> list[ServiceSpec]:
    return [
        s
        for s in running_specs()
        if s.module == module and local_process.read_live_pid(s.pid_file, s.marker) is not None
    ]


def scale(
    edges: int,
    shards: int,
    timeout_s: float = 120.0,
    max_edges: int | None = None,
    max_counters: int | None = None,
) -> None:
    """The operator's resize: `resize`, and, when the stack runs an autoscaler, move its
    bounds so it keeps what was asked (the asked sizes become the floors; `max_edges` and
    `max_counters` set new ceilings, a ceiling equal to the size pins the tier). Waits for
    an autoscaler resize in progress first."""
    with scaling_lock(WAITING_FOR_AUTOSCALER):
        bounds = read_bounds()
        if bounds is not None:
            moved = StackBounds(
                bounds.edge.after_operator_resize(edges, max_edges),
                bounds.counter.after_operator_resize(shards, max_counters),
            )
            if moved.edge.max_replicas > LOCAL_MAX_EDGES:
                raise RuntimeError(f"the local stack has room for {LOCAL_MAX_EDGES} edges")
            if moved.counter.max_replicas > LOCAL_MAX_COUNTERS:
                raise RuntimeError(f"the local stack has room for {LOCAL_MAX_COUNTERS} counters")
            write_bounds(moved, "scale")
            print(f"autoscaler bounds now: {moved.describe()}", flush=True)
        resize(edges, shards, timeout_s)


def resize(edges: int, shards: int, timeout_s: float = 120.0) -> None:
    """Resizes the running stack to `edges` edges and `shards` counter processes (the
    autoscaler's own resizes; operators go through `scale`).

    Growing: counters first (new edges then find every shard served), then edges. Shrinking:
    edges first (their drain delivers to the counters), then counters, highest index first,
    one at a time, each handing its shards off before it exits.
    """
    if shards < 1 or edges < 0:
        raise RuntimeError("need at least one counter process and no negative edge count")
    counters, current_edges = _running("counter"), _running("edge")
    if not counters:
        raise RuntimeError("the stack is not running; start it with `make up`")
    widest = plan(
        max([edges, *(_index(s) + 1 for s in current_edges)]),
        max([shards, *(_index(s) + 1 for s in counters)]),
    )
    target = {s.name: s for s in widest}
    new_counters = [
        target[f"counter-{i}"] for i in range(shards) if f"counter-{i}" not in _names(counters)
    ]
    for spec in new_counters:
        start_service(spec)
        print(f"started {spec.name} (takes its share of the logical shards)", flush=True)
    wait_serving(new_counters, timeout_s)
    for spec in sorted(current_edges, key=_index, reverse=True)[
        : max(0, len(current_edges) - edges)
    ]:
        _drain(spec.name)
    new_edges = [
        target[f"edge-{j}"] for j in range(edges) if f"edge-{j}" not in _names(current_edges)
    ]
    for spec in new_edges:
        redis_server.up_journal(spec.name, edge_redis_port(_index(spec)))
        start_service(spec)
        print(f"started {spec.name}", flush=True)
    wait_serving(new_edges, timeout_s)
    wait_settled(timeout_s)
    for spec in sorted(counters, key=_index, reverse=True)[: max(0, len(counters) - shards)]:
        _drain(spec.name)
        # Each leaver's shards land before the next leaves, so no shard is handed to a
        # process that is itself about to go (it would move twice).
        wait_settled(timeout_s)


def _names(specs: list[ServiceSpec]) -> set[str]:
    return {s.name for s in specs}


def drain(name: str, grace_s: float = STOP_GRACE_S) -> None:
    """The operator's drain of one node (`_drain`); when that leaves its tier below the
    autoscaler's floor, the floor follows, so the node is not started again at once."""
    with scaling_lock(WAITING_FOR_AUTOSCALER):
        _drain(name, grace_s)
        bounds = read_bounds()
        module = name.rsplit("-", 1)[0]
        if bounds is None or module not in ("edge", "counter"):
            return
        tier = bounds.tier(module)
        remaining = len(_running(module))
        if remaining >= tier.min_replicas:
            return
        floor = max(1, remaining)
        ceiling = tier.max_replicas if tier.autoscaled else floor
        lowered = TierBounds(floor, ceiling, tier.autoscaled)
        moved = (
            StackBounds(lowered, bounds.counter)
            if module == "edge"
            else StackBounds(bounds.edge, lowered)
        )
        write_bounds(moved, "drain")
        print(f"autoscaler bounds now: {moved.describe()}", flush=True)


def _drain(name: str, grace_s: float = STOP_GRACE_S) -> None:
    """Drains one node and waits for it to exit: an edge stops taking work, flushes its
    journal and leaves; a counter process hands every shard it serves off first."""
    spec = next((s for s in running_specs() if s.name == name), None)
    pid = local_process.read_live_pid(spec.pid_file, spec.marker) if spec else None
    if spec is None or pid is None:
        raise RuntimeError(f"{name} is not running (see `make status`)")
    began = time.monotonic()
    local_process.terminate([(pid, spec.marker)], grace_s)
    spec.pid_file.unlink(missing_ok=True)
    print(f"drained {name} in {time.monotonic() - began:.1f} s", flush=True)


def read_shard_map() -> counter_pb2.ShardMap | None:
    """The shard map as any running counter process answers it, or None."""
    for spec in _running("counter"):
        with (
            open_blocking_channel(spec.address, ADMIN) as channel,
            contextlib.suppress(grpc.RpcError),
        ):
            return counter_pb2_grpc.CounterServiceStub(channel).GetShardMap(
                counter_pb2.GetShardMapRequest(), timeout=2
            )
    return None


def settled(shard_map: counter_pb2.ShardMap | None) -> bool:
    """Every logical shard is served, by the process the assignment gives it to."""
    return shard_map is not None and all(
        o.address and o.member == o.assigned_member for o in shard_map.owners
    )


def wait_settled(timeout_s: float) -> float:
    """Waits until every logical shard is served by its assigned counter process; returns
    the seconds waited.

    Raises:
        RuntimeError: still moving after `timeout_s`.
    """
    began = time.monotonic()
    while not settled(read_shard_map()):
        if time.monotonic() - began > timeout_s:
            raise RuntimeError(
                f"logical shards still moving after {timeout_s:.0f} s:\n"
                + "\n".join(shard_map_lines())
            )
        time.sleep(0.2)
    return time.monotonic() - began


def shard_map_lines() -> list[str]:
    """Which counter process serves each logical shard (from any running counter)."""
    shard_map = read_shard_map()
    if shard_map is None:
        return ["logical shards: no counter process answered"]
    by_member: dict[str, list[int]] = {}
    for owner in shard_map.owners:
        by_member.setdefault(owner.member or "(none: moving)", []).append(owner.shard)
    lines = [f"logical shards ({shard_map.shard_count}) by counter process:"]
    for member in shard_map.members:
        shards = by_member.pop(member.member, [])
        state = " leaving" if member.leaving else ""
        lines.append(f"  {member.member:<12}{member.address:<18}{shards}{state}")
    lines.extend(f"  {member:<30}{shards}" for member, shards in by_member.items())
    moving = [o.shard for o in shard_map.owners if o.member != o.assigned_member]
    if moving:
        lines.append(f"  moving to their assigned process: {moving}")
    return lines


def log_files() -> list[Path]:
    return sorted((var_dir() / "log").glob("*.log"))
