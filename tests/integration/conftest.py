"""Real servers for integration tests: one Cassandra node and Redis instances, started once
per test run by the project's own launchers, plus helpers that run Reelstream services as
real processes on free ports."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import grpc
import pytest
from cassandra.cluster import Cluster
from grpc_health.v1 import health_pb2, health_pb2_grpc

from protos import common_pb2, counter_pb2, counter_pb2_grpc
from reelstream.infra import cassandra_node, redis_server
from reelstream.ring import ConsistentHashRing

REPO_ROOT = Path(__file__).resolve().parents[2]
TEST_REDIS_PORT = 6399

# The suite's services and its own clients speak plaintext, switched on explicitly in this one
# place (processes the fixtures start inherit it); tests/integration/test_mtls.py runs real
# services with mutual TLS and overrides it for them (docs/security.md).
os.environ["REELSTREAM_PLAINTEXT"] = "1"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.fixture(scope="session")
def cassandra() -> str:
    """A running single Cassandra node (left running for later runs and other tests)."""
    cassandra_node.up(1, timeout_s=300)
    return "127.0.0.1"


@pytest.fixture(scope="session")
def redis_port() -> int:
    redis_server.up(name="test", port=TEST_REDIS_PORT)
    return TEST_REDIS_PORT


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> Iterator[None]:
    """Remembers each test's outcome on its node, for fixtures that keep evidence."""
    outcome = yield
    report = outcome.get_result()  # type: ignore[attr-defined]
    if report.when == "call":
        item.stash[FAILED_KEY] = report.failed


FAILED_KEY = pytest.StashKey[bool]()


@pytest.fixture
def keyspace(cassandra: str, request: pytest.FixtureRequest) -> Iterator[str]:
    """A fresh keyspace per test, so tests never see each other's counts; dropped after a
    passing test, kept (and named in the output) after a failing one for inspection."""
    name = f"test_{uuid.uuid4().hex[:12]}"
    yield name
    if request.node.stash.get(FAILED_KEY, False):
        print(f"keeping keyspace {name} of the failed test for inspection")
        return
    cluster = Cluster([cassandra], protocol_version=5)
    try:
        cluster.connect().execute(f"DROP KEYSPACE IF EXISTS {name}", timeout=60)
    except Exception as exc:  # a test that restarted Cassandra may leave it unreachable
        print(f"could not drop keyspace {name}: {exc}")
    finally:
        cluster.shutdown()


@dataclass
class ServiceProcess:
    name: str
    address: str
    process: subprocess.Popen[bytes]
    log_path: Path
    env: dict[str, str] = field(default_factory=dict)

    def log_tail(self, lines: int = 40) -> str:
        return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])


def wait_serving(service: ServiceProcess, timeout_s: float = 120.0) -> None:
    deadline = time.monotonic() + timeout_s
    with grpc.insecure_channel(service.address) as channel:
        stub = health_pb2_grpc.HealthStub(channel)
        while True:
            if service.process.poll() is not None:
                raise AssertionError(f"{service.name} exited:\n{service.log_tail()}")
            try:
                response = stub.Check(health_pb2.HealthCheckRequest(), timeout=1)
                if response.status == health_pb2.HealthCheckResponse.SERVING:
                    return
            except grpc.RpcError:
                pass
            if time.monotonic() > deadline:
                raise AssertionError(f"{service.name} not SERVING:\n{service.log_tail()}")
            time.sleep(0.2)


def start_process(
    module: str, name: str, env: dict[str, str], address: str, log_dir: Path
) -> ServiceProcess:
    """Starts `python -m <module>` with env overrides, logging to `log_dir/<name>.log`."""
    log_path = log_dir / f"{name}.log"
    full_env = {**os.environ, **env}
    with log_path.open("ab") as log:
        process = subprocess.Popen(
            [sys.executable, "-m", module, f"--label={name}"],
            cwd=REPO_ROOT,
            env=full_env,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
    return ServiceProcess(name, address, process, log_path, env)


def stop_process(service: ServiceProcess) -> None:
    """SIGTERM, then SIGKILL after 30 s."""
    if service.process.poll() is None:
        service.process.terminate()
        try:
            service.process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            service.process.kill()
            service.process.wait()


@pytest.fixture
def start_unready(tmp_path: Path) -> Iterator[Callable[..., ServiceProcess]]:
    """Starts a service process without waiting for it; stops it after the test."""
    started: list[ServiceProcess] = []

    def start(module: str, name: str, env: dict[str, str], address: str) -> ServiceProcess:
        service = start_process(module, name, env, address, tmp_path)
        started.append(service)
        return service

    yield start
    for service in reversed(started):
        stop_process(service)


@pytest.fixture
def start_service(
    start_unready: Callable[..., ServiceProcess],
) -> Callable[..., ServiceProcess]:
    """Starts a service process and waits until it is SERVING; stops it after the test."""

    def start(module: str, name: str, env: dict[str, str], address: str) -> ServiceProcess:
        service: ServiceProcess = start_unready(module, name, env, address)
        wait_serving(service)
        return service

    return start


def counter_env(keyspace: str, index: int, shard_count: int, address: str) -> dict[str, str]:
    """Counter process `counter-<index>` of a ring of `shard_count` logical shards."""
    return {
        "REELSTREAM_COUNTER_NAME": f"counter-{index}",
        "REELSTREAM_COUNTER_SHARD_COUNT": str(shard_count),
        "REELSTREAM_COUNTER_GRPC_ADDRESS": address,
        "REELSTREAM_COUNTER_METRICS_PORT": "0",
        "REELSTREAM_COUNTER_KEYSPACE": keyspace,
        "REELSTREAM_COUNTER_SNAPSHOT_INTERVAL_S": "0.5",
    }


def origin_env(keyspace: str, address: str, media_dir: Path) -> dict[str, str]:
    """An origin's settings for tests: its keyspace and media folder, the fastest ladder."""
    return {
        "REELSTREAM_ORIGIN_GRPC_ADDRESS": address,
        "REELSTREAM_ORIGIN_METRICS_PORT": "0",
        "REELSTREAM_ORIGIN_KEYSPACE": keyspace,
        "REELSTREAM_ORIGIN_MEDIA_DIR": str(media_dir),
        "REELSTREAM_ORIGIN_FFMPEG_THREADS": "1",
        "REELSTREAM_ORIGIN_X264_PRESET": "ultrafast",
    }


def edge_env(
    keyspace: str,
    name: str,
    address: str,
    redis_port: int,
    counters: list[str],
    origin: str | None = None,
    shard_count: int | None = None,
) -> dict[str, str]:
    """An edge's settings; the ring has `shard_count` logical shards (default: one per
    counter process listed, as the counting tests start them)."""
    return {
        "REELSTREAM_EDGE_SHARD_COUNT": str(shard_count or len(counters)),
        "REELSTREAM_EDGE_NAME": f"{name}-{keyspace}",
        # Registers in the test's keyspace (the service registry), like every test service.
        "REELSTREAM_EDGE_KEYSPACE": keyspace,
        "REELSTREAM_EDGE_GRPC_ADDRESS": address,
        "REELSTREAM_EDGE_METRICS_PORT": "0",
        "REELSTREAM_EDGE_REDIS_URL": f"redis://127.0.0.1:{redis_port}/0",
        "REELSTREAM_EDGE_COUNTER_ADDRESSES": ",".join(counters),
        # Tests of the counting path run without an origin; test_end_to_end covers reels.
        "REELSTREAM_EDGE_VALIDATE_REELS": "false" if origin is None else "true",
        "REELSTREAM_EDGE_ORIGIN_ADDRESS": origin or "127.0.0.1:1",
        # Every edge serves HLS too: a port of its own, so several edges can run at once.
        "REELSTREAM_EDGE_HTTP_ADDRESS": f"127.0.0.1:{free_port()}",
    }


class ShardMapUnavailable(AssertionError):
    """No counter process answered GetShardMap (each reads it from Cassandra)."""


def shard_map(counters: list[str]) -> counter_pb2.ShardMap:
    """The shard map as the first answering counter process has it."""
    for address in counters:
        with grpc.insecure_channel(address) as channel:
            try:
                return counter_pb2_grpc.CounterServiceStub(channel).GetShardMap(
                    counter_pb2.GetShardMapRequest(), timeout=5
                )
            except grpc.RpcError:
                continue
    raise ShardMapUnavailable(f"no counter process answered GetShardMap: {counters}")


def counts_from_shards(counters: list[str], reel_ids: list[int]) -> dict[int, int]:
    """Views of `reel_ids` read from the process serving each reel's logical shard (a reel
    of a shard without an owner right now is left out)."""
    owners = {o.shard: o.address for o in shard_map(counters).owners if o.address}
    ring = ConsistentHashRing.of_size(len(shard_map(counters).owners))
    by_shard: dict[int, list[int]] = {}
    for reel_id in reel_ids:
        by_shard.setdefault(ring.shard_for(reel_id), []).append(reel_id)
    counts: dict[int, int] = {}
    for shard, ids in by_shard.items():
        if shard not in owners:
            continue
        with grpc.insecure_channel(owners[shard]) as channel:
            stub = counter_pb2_grpc.CounterServiceStub(channel)
            try:
                for start in range(0, len(ids), 1000):
                    response = stub.GetCounts(
                        common_pb2.GetCountsRequest(reel_ids=ids[start : start + 1000]),
                        timeout=10,
                    )
                    counts.update((c.reel_id, c.views) for c in response.counts)
            except grpc.RpcError:
                continue  # moved meanwhile: the caller asks again
    return counts


def wait_for_map(
    counters: list[str], members: set[str], timeout_s: float = 60
) -> counter_pb2.ShardMap:
    """Waits until every shard is served by the member the assignment gives it to, and the
    members serving shards are exactly `members`."""
    deadline = time.monotonic() + timeout_s
    while True:
        current = shard_map(counters)
        serving = {o.member for o in current.owners}
        settled = all(o.address and o.member == o.assigned_member for o in current.owners)
        if settled and serving == members:
            return current
        assert time.monotonic() < deadline, f"shards not settled on {members}: {current}"
        time.sleep(0.2)
