"""Client-side load balancing over registered edges (issue 7's proof).

Three real edges (and one counter process) register in the service registry; a client
balances SendEvents over them through `open_balanced_blocking_channel` (round_robin,
health-checked), from several threads as Locust's users do. SendEvents is not idempotent,
so the channel never retries it: a call that fails is reported, and the tests bound how many
may fail.

- kill -9 of an edge under load: only calls in flight on it may fail (at most one per
  client thread), the others keep succeeding, its registry row expires, and once restarted
  it serves again.
- SIGTERM (graceful drain) of an edge under load: no call fails; the edge marks itself
  leaving in the registry before its health turns NOT_SERVING, then its row goes.
"""

from __future__ import annotations

import re
import threading
import time
import urllib.request
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field

import grpc
import pytest
from cassandra.cluster import Cluster

from protos import common_pb2, edge_pb2_grpc
from reelstream.channels import EDGE_POLICY, open_balanced_blocking_channel
from tests.integration.conftest import (
    ServiceProcess,
    counter_env,
    edge_env,
    free_port,
    start_process,
    wait_serving,
)

CLIENT_THREADS = 6
EDGES = 3
REGISTRY_TTL_S = 3.0
CALL_TIMEOUT_S = 5.0


@dataclass
class Outcomes:
    """What the client saw, call by call (monotonic completion times)."""

    successes: list[float] = field(default_factory=list)
    failures: list[tuple[float, str]] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def successes_after(self, moment: float) -> int:
        with self.lock:
            return sum(1 for t in self.successes if t > moment)


class BalancedClient:
    """`CLIENT_THREADS` threads sending small view batches through one balanced channel."""

    def __init__(self, addresses: list[str]) -> None:
        self.outcomes = Outcomes()
        self._channel = open_balanced_blocking_channel(addresses, EDGE_POLICY)
        self._stub = edge_pb2_grpc.EdgeServiceStub(self._channel)
        self._stop = threading.Event()
        self._threads = [
            threading.Thread(target=self._run, args=(i,), daemon=True)
            for i in range(CLIENT_THREADS)
        ]

    def _run(self, index: int) -> None:
        reel_id = 5_000_000 + index * 1_000_000
        while not self._stop.is_set():
            reel_id += 1
            batch = common_pb2.EventBatch(
                reel_ids=[reel_id] * 10,
                user_ids=range(1, 11),
                kinds=[common_pb2.EVENT_KIND_VIEW] * 10,
                watch_ms=[5_000] * 10,
            )
            try:
                self._stub.SendEvents(batch, timeout=CALL_TIMEOUT_S)
                with self.outcomes.lock:
                    self.outcomes.successes.append(time.monotonic())
            except grpc.RpcError as exc:
                code = exc.code().name if isinstance(exc, grpc.Call) else "?"
                with self.outcomes.lock:
                    self.outcomes.failures.append((time.monotonic(), code))
            time.sleep(0.005)

    def __enter__(self) -> BalancedClient:
        for thread in self._threads:
            thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        for thread in self._threads:
            thread.join(timeout=CALL_TIMEOUT_S + 5)
        self._channel.close()


@dataclass
class EdgeStack:
    keyspace: str
    edges: list[ServiceProcess]
    metrics: list[int]
    envs: list[dict[str, str]]
    start: Callable[[int], ServiceProcess]


@pytest.fixture
def edge_stack(
    keyspace: str, redis_port: int, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[EdgeStack]:
    log_dir = tmp_path_factory.mktemp("lb")
    started: list[ServiceProcess] = []
    counter_address = f"127.0.0.1:{free_port()}"
    counter = start_process(
        "counter",
        "counter-0",
        counter_env(keyspace, 0, 1, counter_address),
        counter_address,
        log_dir,
    )
    started.append(counter)
    envs, metrics = [], []
    for index in range(EDGES):
        address = f"127.0.0.1:{free_port()}"
        metrics.append(free_port())
        env = edge_env(keyspace, f"edge-{index}", address, redis_port, [counter_address])
        env["REELSTREAM_EDGE_METRICS_PORT"] = str(metrics[-1])
        env["REELSTREAM_EDGE_REGISTRY_HEARTBEAT_S"] = "0.5"
        env["REELSTREAM_EDGE_REGISTRY_TTL_S"] = str(REGISTRY_TTL_S)
        envs.append(env)

    def start(index: int) -> ServiceProcess:
        env = envs[index]
        edge = start_process(
            "edge", f"edge-{index}", env, env["REELSTREAM_EDGE_GRPC_ADDRESS"], log_dir
        )
        started.append(edge)
        return edge

    wait_serving(counter)
    edges = [start(index) for index in range(EDGES)]
    for edge in edges:
        wait_serving(edge)
    try:
        yield EdgeStack(keyspace, edges, metrics, envs, start)
    finally:
        for service in reversed(started):
            if service.process.poll() is None:
                service.process.kill()
                service.process.wait()


def registered_edges(keyspace: str) -> dict[str, str]:
    """Address -> state of the live edge rows of the registry."""
    cluster = Cluster(["127.0.0.1"], protocol_version=5)
    try:
        rows = cluster.connect().execute(
            f"SELECT grpc_address, state, expires_ms FROM {keyspace}.service_members"
            " WHERE kind = 'edge'"
        )
        now_ms = time.time() * 1000
        return {row.grpc_address: row.state for row in rows if row.expires_ms > now_ms}
    finally:
        cluster.shutdown()


def wait_until(condition: Callable[[], bool], timeout_s: float, what: str) -> None:
    deadline = time.monotonic() + timeout_s
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.2)


def send_events_handled(metrics_port: int) -> float:
    """SendEvents calls the edge answered OK, from its /metrics."""
    with urllib.request.urlopen(f"http://127.0.0.1:{metrics_port}/metrics", timeout=5) as reply:
        text = reply.read().decode()
    pattern = (
        r'grpc_server_handled_total\{grpc_code="OK",grpc_method="SendEvents",'
        r'grpc_service="reelstream.v1.EdgeService"\} ([0-9.e+]+)'
    )
    match = re.search(pattern, text)
    return float(match.group(1)) if match else 0.0


def addresses(stack: EdgeStack) -> list[str]:
    return [edge.address for edge in stack.edges]


def test_edge_killed_under_load_leaves_the_pool_and_clients_keep_succeeding(
    edge_stack: EdgeStack,
) -> None:
    stack = edge_stack
    wait_until(lambda: len(registered_edges(stack.keyspace)) == EDGES, 30, "3 registered edges")
    victim = stack.edges[2]
    with BalancedClient(addresses(stack)) as client:
        wait_until(lambda: client.outcomes.successes_after(0) >= 300, 60, "300 calls")
        spread = [send_events_handled(port) for port in stack.metrics]
        # round_robin: every edge takes its share (an even share would be a third).
        assert min(spread) >= 0.15 * sum(spread), f"calls per edge {spread}"

        victim.process.kill()  # SIGKILL: no drain, no leaving mark
        victim.process.wait()
        killed_at = time.monotonic()
        wait_until(lambda: client.outcomes.successes_after(killed_at) >= 300, 60, "300 more")
        # The dead edge's row expires (no heartbeat): routers reading the registry drop it.
        wait_until(
            lambda: victim.address not in registered_edges(stack.keyspace),
            REGISTRY_TTL_S + 10,
            "the killed edge's row to expire",
        )
        failures = list(client.outcomes.failures)

        # Restarted, it is health-checked back into the pool and takes calls again.
        before = time.monotonic()
        stack.edges[2] = stack.start(2)
        wait_serving(stack.edges[2])
        wait_until(
            lambda: send_events_handled(stack.metrics[2]) >= 20, 30, "the restarted edge to serve"
        )
        restarted_after_s = time.monotonic() - before

    # Only calls in flight on the killed edge failed: at most one per client thread, all
    # UNAVAILABLE, all within moments of the kill; nothing failed on the living edges.
    print(
        f"kill -9 of 1 of {EDGES} edges under load: {len(failures)} failed calls"
        f" (bound {CLIENT_THREADS}), {len(client.outcomes.successes)} succeeded;"
        f" restarted edge serving again {restarted_after_s:.1f} s after restart began"
    )
    assert len(failures) <= CLIENT_THREADS, failures
    assert {code for _, code in failures} <= {"UNAVAILABLE"}, failures
    assert all(t - killed_at < 2.0 for t, _ in failures), failures
    assert not client.outcomes.failures[len(failures) :], "calls failed after the restart"


def test_edge_drained_under_load_leaves_the_pool_without_client_errors(
    edge_stack: EdgeStack,
) -> None:
    stack = edge_stack
    wait_until(lambda: len(registered_edges(stack.keyspace)) == EDGES, 30, "3 registered edges")
    leaving = stack.edges[1]
    with BalancedClient(addresses(stack)) as client:
        wait_until(lambda: client.outcomes.successes_after(0) >= 300, 60, "300 calls")
        leaving.process.terminate()  # SIGTERM: graceful drain
        drained_at = time.monotonic()
        wait_until(
            lambda: registered_edges(stack.keyspace).get(leaving.address) == "leaving",
            5,
            "the draining edge to mark itself leaving",
        )
        assert leaving.process.wait(timeout=30) == 0, leaving.log_tail()
        wait_until(
            lambda: leaving.address not in registered_edges(stack.keyspace),
            5,
            "the drained edge's row to go",
        )
        wait_until(lambda: client.outcomes.successes_after(drained_at) >= 300, 60, "300 more")

    print(
        f"drain of 1 of {EDGES} edges under load: {len(client.outcomes.failures)} failed calls,"
        f" {len(client.outcomes.successes)} succeeded"
    )
    assert client.outcomes.failures == []
