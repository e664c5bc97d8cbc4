"""`reelstream up` runs the autoscaler as part of the stack: under a short spike on the only
edge it starts a second edge, after the spike (a short scale-down window) it drains it
again, every tier runs at its CPU priority (the edge it adds too), and `reelstream down`
leaves none of the stack's processes behind.

The stack is the real one (`reelstream/stack.py`: origin, counter, spam, moderation, edges,
their Redis, on the stack's fixed loopback ports) in a var directory of its own and a
keyspace of its own; it uses the suite's Cassandra node and leaves it running
(`--shared-cassandra`). Skipped when a stack's ports are already taken (a
`make up` of someone's): run it under the machine lock.
"""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import grpc
import pytest
from cassandra.cluster import Cluster

from protos import common_pb2, edge_pb2_grpc
from reelstream import stack, stack_status
from reelstream.autoscaler import last_decisions
from reelstream.cassandra_client import CassandraClient, CassandraSettings
from reelstream.infra import cpu_priority, local_process, redis_server
from reelstream.schema import apply_schema
from tests.integration.conftest import REPO_ROOT

pytestmark = pytest.mark.timeout(300)

STACK_PORTS = (50051, 50052, 50061, 50071, 50081, 50091, 6390, 6391, 8080, 8081, 9151, 9152)
TIERS = ("COUNTER", "ORIGIN", "SPAM", "MODERATION", "EDGE")


def reelstream(env: dict[str, str], *args: str, timeout_s: float) -> str:
    """Runs the operator CLI; fails the test with its output when it fails."""
    done = subprocess.run(
        [sys.executable, "-m", "reelstream.cli", *args],
        cwd=REPO_ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout_s,
        check=False,
    )
    output = done.stdout + done.stderr
    assert done.returncode == 0, f"reelstream {' '.join(args)} failed:\n{output}"
    return output


def until(condition: Callable[[], bool], timeout_s: float, what: str) -> float:
    """Polls `condition` until true; returns the seconds it took."""
    began = time.monotonic()
    while not condition():
        assert time.monotonic() - began < timeout_s, f"not within {timeout_s:.0f} s: {what}"
        time.sleep(0.25)
    return time.monotonic() - began


def edge_serving(name: str) -> bool:
    spec = next((s for s in stack.running_specs() if s.name == name), None)
    return (
        spec is not None
        and local_process.read_live_pid(spec.pid_file, spec.marker) is not None
        and stack.health(spec.address) == "SERVING"
    )


def edge_gone(name: str) -> bool:
    spec = next(s for s in stack.plan(2, 1) if s.name == name)
    return local_process.read_live_pid(spec.pid_file, spec.marker) is None


@pytest.fixture
def stack_env(
    cassandra: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> Iterator[dict[str, str]]:
    """The environment of a stack in its own var directory and keyspace (the suite's
    Cassandra node is shared); also this test process's environment (stack helpers read
    `$REELSTREAM_VAR_DIR`)."""
    busy = [port for port in STACK_PORTS if local_process.port_open("127.0.0.1", port)]
    if busy:
        pytest.skip(f"the local stack's ports are taken ({busy}): is a `make up` running?")
    var = tmp_path / "var"
    var.mkdir()
    keyspace = f"test_{uuid.uuid4().hex[:12]}"
    # Every service applies the schema at start-up; five of them doing so at once in a new
    # keyspace raced (the origin prepared a query before another process's ALTER TABLE had
    # landed: "Undefined column name age_restricted"), so the keyspace is made first, as a
    # stack's existing keyspace would be.
    asyncio.run(make_keyspace(keyspace))
    settings = {f"REELSTREAM_{tier}_KEYSPACE": keyspace for tier in TIERS}
    settings |= {
        "REELSTREAM_VAR_DIR": str(var),
        "REELSTREAM_PLAINTEXT": "1",
        # The spike sends made-up reels: no catalog to check them against.
        "REELSTREAM_EDGE_VALIDATE_REELS": "false",
    }
    for key, value in settings.items():
        monkeypatch.setenv(key, value)
    yield {**os.environ, **settings}
    cluster = Cluster([cassandra], protocol_version=5)
    try:
        cluster.connect().execute(f"DROP KEYSPACE IF EXISTS {keyspace}", timeout=60)
    finally:
        cluster.shutdown()


async def make_keyspace(keyspace: str) -> None:
    client = CassandraClient(CassandraSettings(("127.0.0.1",), 9042, keyspace))
    await client.connect(max_wait_s=60)
    try:
        await apply_schema(client)
    finally:
        await client.close()


class Spike:
    """A closed loop of a few threads sending small batches to one edge, until stopped."""

    def __init__(self, address: str, threads: int = 3, batch: int = 100) -> None:
        self._address = address
        self._batch = batch
        self._stop = threading.Event()
        self._users = iter(range(1, 10**9))
        self._lock = threading.Lock()
        self.calls = 0
        self.accepted = 0
        self._threads = [threading.Thread(target=self._send, daemon=True) for _ in range(threads)]

    def _send(self) -> None:
        with grpc.insecure_channel(self._address) as channel:
            edge = edge_pb2_grpc.EdgeServiceStub(channel)
            while not self._stop.is_set():
                with self._lock:
                    users = [next(self._users) for _ in range(self._batch)]
                batch = common_pb2.EventBatch(
                    reel_ids=[(u % 500) + 1 for u in users],
                    user_ids=users,
                    kinds=[common_pb2.EVENT_KIND_VIEW] * self._batch,
                    watch_ms=[5000] * self._batch,
                )
                try:
                    self.accepted += edge.SendEvents(batch, timeout=10).accepted
                    self.calls += 1
                except grpc.RpcError:
                    self._stop.wait(0.1)

    def __enter__(self) -> Spike:
        for thread in self._threads:
            thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        for thread in self._threads:
            thread.join(timeout=15)


def assert_tier_priorities(pids: dict[str, tuple[int, str]]) -> None:
    """The launchers gave each tier its CPU priority (reelstream/infra/cpu_priority.py),
    also the edge and the Redis the autoscaler started; a raised one needs CAP_SYS_NICE."""
    raised = cpu_priority.can_raise_priority()
    for name, tier in [
        ("edge-0", "edge"),
        ("edge-1", "edge"),
        ("redis-edge-0", cpu_priority.JOURNAL_TIER),
        ("redis-edge-1", cpu_priority.JOURNAL_TIER),
        ("counter-0", "counter"),
    ]:
        expected = cpu_priority.tier_nice(tier)
        if expected < 0 and not raised:
            expected = 0
        assert local_process.niceness(pids[name][0]) == expected, f"{name} ({tier})"


def test_up_runs_an_autoscaler_that_adds_an_edge_under_a_spike_and_removes_it_after(
    stack_env: dict[str, str],
) -> None:
    began = time.monotonic()
    pids: dict[str, tuple[int, str]] = {}  # name -> (pid, marker on its command line)
    try:
        output = reelstream(
            stack_env,
            *("up", "--shared-cassandra", "--edges", "1", "--shards", "1", "--max-edges", "2"),
            *("--autoscale-interval", "2", "--scale-down-window", "8", "--timeout", "120"),
            # Half the default CPU target: in one CI run the spike's edge got ~0.6 cores of
            # this machine's two (the default target) and no edge was added.
            *("--autoscale-edge-cpu", "0.3"),
            timeout_s=200,
        )
        assert "autoscaler edges 1..2, counters pinned at 1" in output, output
        started_s = time.monotonic() - began
        autoscaler = stack.autoscaler_spec()
        pid = local_process.read_live_pid(autoscaler.pid_file, autoscaler.marker)
        assert pid is not None, output
        pids["autoscaler"] = (pid, autoscaler.marker)
        assert any("RUNNING" in line for line in stack_status.autoscaler_lines())

        with Spike("127.0.0.1:50051") as spike:
            out_s = until(lambda: edge_serving("edge-1"), 60, "edge-1 started by the autoscaler")
        assert spike.calls > 0
        for spec in stack.running_specs():
            live = local_process.read_live_pid(spec.pid_file, spec.marker)
            if live is not None:
                pids[spec.name] = (live, spec.marker)
        for name in ("edge-0", "edge-1"):
            redis = redis_server.instance_spec(name)
            redis_pid = redis_server.read_pid(redis)
            assert redis_pid is not None, f"{name}'s Redis is not running"
            pids[f"redis-{name}"] = (redis_pid, str(redis.config_file))
        assert "edge-1" in pids
        assert_tier_priorities(pids)
        decisions = last_decisions(autoscaler.log_file)
        in_s = until(lambda: edge_gone("edge-1"), 90, "edge-1 drained after the spike")
        # The decision is logged once the stop has completed, which can be just after the
        # edge is seen gone.
        until(
            lambda: "action=scale-down current=2 desired=1" in autoscaler.log_file.read_text(),
            30,
            "the scale-down decision logged",
        )
        log = autoscaler.log_file.read_text()
        assert "action=scale-up current=1 desired=2" in log, log
        assert "action=scale-down current=2 desired=1" in log, log
        # Still running: removing the edge was a decision, not a shutdown.
        assert local_process.is_running(pid, autoscaler.marker)
    finally:
        down = reelstream(stack_env, "down", "--shared-cassandra", timeout_s=120)
    assert down.splitlines()[0] == "stopped autoscaler", down
    left = {name: p for name, (p, marker) in pids.items() if local_process.is_running(p, marker)}
    assert not left, f"still running after down: {left}"
    assert not stack.var_dir().joinpath("run", "autoscale-bounds.json").exists()
    print(
        f"stack up in {started_s:.1f} s; edge-1 SERVING {out_s:.1f} s into the spike "
        f"({spike.calls} calls, {spike.accepted} events accepted); drained {in_s:.1f} s after it; "
        f"last edge decision before the drain: {decisions.get('edge', {}).get('reason')}; "
        f"whole test {time.monotonic() - began:.1f} s"
    )
