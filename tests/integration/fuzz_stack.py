"""One real stack for the bad-input suites: origin, counter shard, spam service and edge as
processes on free ports, sharing one fresh keyspace, with helpers to call any RPC with raw
bytes, check health and read each process's resident memory."""

from __future__ import annotations

import os
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import grpc
from cassandra.cluster import Cluster
from google.protobuf.descriptor import MethodDescriptor, ServiceDescriptor
from grpc_health.v1 import health_pb2, health_pb2_grpc

from protos import counter_pb2, edge_pb2, origin_pb2, spam_pb2
from tests.integration.conftest import (
    ServiceProcess,
    counter_env,
    edge_env,
    free_port,
    start_process,
    stop_process,
    wait_serving,
)

# Statuses a hostile or malformed request may get. UNKNOWN and INTERNAL mean an unhandled
# exception in a servicer; UNAVAILABLE would mean the service broke.
CLEAR_REFUSALS = frozenset(
    {
        grpc.StatusCode.OK,
        grpc.StatusCode.INVALID_ARGUMENT,
        grpc.StatusCode.NOT_FOUND,
        grpc.StatusCode.FAILED_PRECONDITION,
        grpc.StatusCode.RESOURCE_EXHAUSTED,
        grpc.StatusCode.OUT_OF_RANGE,
        grpc.StatusCode.UNAUTHENTICATED,
        grpc.StatusCode.PERMISSION_DENIED,
    }
)

SERVICES: dict[str, ServiceDescriptor] = {
    "edge": edge_pb2.DESCRIPTOR.services_by_name["EdgeService"],
    "counter": counter_pb2.DESCRIPTOR.services_by_name["CounterService"],
    "origin": origin_pb2.DESCRIPTOR.services_by_name["OriginService"],
    "spam": spam_pb2.DESCRIPTOR.services_by_name["SpamService"],
}


def rpc_path(method: MethodDescriptor) -> str:
    return f"/{method.containing_service.full_name}/{method.name}"


@dataclass
class FuzzStack:
    processes: dict[str, ServiceProcess]
    http_address: str
    keyspace: str
    media_root: Path
    channels: dict[str, grpc.Channel] = field(default_factory=dict)

    def channel(self, name: str) -> grpc.Channel:
        if name not in self.channels:
            self.channels[name] = grpc.insecure_channel(
                self.processes[name].address,
                options=[
                    ("grpc.max_send_message_length", 64 * 1024 * 1024),
                    ("grpc.max_receive_message_length", 64 * 1024 * 1024),
                ],
            )
        return self.channels[name]

    def call(
        self, service: str, method: MethodDescriptor, requests: list[bytes], timeout_s: float = 15
    ) -> grpc.StatusCode:
        """Calls `method` with raw request bytes (identity serializers); returns the status.
        A server stream is read for its first message or until a short deadline."""
        channel = self.channel(service)
        path = rpc_path(method)
        try:
            if not method.client_streaming and not method.server_streaming:
                channel.unary_unary(path)(requests[0], timeout=timeout_s)
            elif method.client_streaming and not method.server_streaming:
                channel.stream_unary(path)(iter(requests), timeout=timeout_s)
            else:
                if method.client_streaming:
                    call = channel.stream_stream(path)(iter(requests), timeout=1.0)
                else:
                    call = channel.unary_stream(path)(requests[0], timeout=1.0)
                try:
                    next(iter(call))
                except StopIteration:
                    pass
                except grpc.RpcError as exc:
                    # Still streaming when our short deadline passed: that is not a refusal.
                    if exc.code() != grpc.StatusCode.DEADLINE_EXCEEDED:
                        raise
                call.cancel()
        except grpc.RpcError as exc:
            code: grpc.StatusCode = exc.code()
            return code
        return grpc.StatusCode.OK

    def assert_healthy(self) -> None:
        for name, process in self.processes.items():
            assert process.process.poll() is None, f"{name} exited:\n{process.log_tail()}"
            stub = health_pb2_grpc.HealthStub(self.channel(name))
            status = stub.Check(health_pb2.HealthCheckRequest(), timeout=5).status
            assert status == health_pb2.HealthCheckResponse.SERVING, name

    def rss_bytes(self) -> dict[str, int]:
        return {name: rss_bytes(p.process.pid) for name, p in self.processes.items()}

    def close(self) -> None:
        for channel in self.channels.values():
            channel.close()
        for process in reversed(self.processes.values()):
            stop_process(process)


def rss_bytes(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024
    raise AssertionError(f"no VmRSS for {pid}")


def start_fuzz_stack(log_dir: Path, redis_port: int, extra_edge_env: dict[str, str]) -> FuzzStack:
    """Starts the four services in dependency order and waits until each is SERVING."""
    keyspace = f"test_fuzz_{uuid.uuid4().hex[:10]}"
    media_root = log_dir / "media"
    addresses = {name: f"127.0.0.1:{free_port()}" for name in SERVICES}
    processes: dict[str, ServiceProcess] = {}
    stack = FuzzStack(processes, "", keyspace, media_root)
    try:
        processes["origin"] = start_process(
            "origin",
            "origin",
            {
                "REELSTREAM_ORIGIN_GRPC_ADDRESS": addresses["origin"],
                "REELSTREAM_ORIGIN_METRICS_PORT": "0",
                "REELSTREAM_ORIGIN_KEYSPACE": keyspace,
                "REELSTREAM_ORIGIN_MEDIA_DIR": str(media_root),
                "REELSTREAM_ORIGIN_FFMPEG_THREADS": "1",
                "REELSTREAM_ORIGIN_X264_PRESET": "ultrafast",
                "REELSTREAM_ORIGIN_MAX_UPLOAD_BYTES": str(2_000_000),
            },
            addresses["origin"],
            log_dir,
        )
        # One schema writer at a time: two processes adding the same column to a fresh
        # keyspace at once can leave one preparing against a schema that lacks it.
        wait_serving(processes["origin"])
        processes["counter"] = start_process(
            "counter",
            "counter-0",
            counter_env(keyspace, 0, 1, addresses["counter"]),
            addresses["counter"],
            log_dir,
        )
        wait_serving(processes["counter"])
        processes["spam"] = start_process(
            "spam",
            "spam",
            {
                "REELSTREAM_SPAM_GRPC_ADDRESS": addresses["spam"],
                "REELSTREAM_SPAM_METRICS_PORT": "0",
                "REELSTREAM_SPAM_KEYSPACE": keyspace,
                "REELSTREAM_SPAM_COUNTER_ADDRESSES": addresses["counter"],
                "REELSTREAM_SPAM_ORIGIN_ADDRESS": addresses["origin"],
                "REELSTREAM_SPAM_JUDGE_INTERVAL_S": "1",
                "REELSTREAM_SPAM_SHARD_COUNT": "1",
            },
            addresses["spam"],
            log_dir,
        )
        env = edge_env(
            keyspace,
            "edge-fuzz",
            addresses["edge"],
            redis_port,
            [addresses["counter"]],
            addresses["origin"],
        )
        env["REELSTREAM_EDGE_SPAM_ADDRESS"] = addresses["spam"]
        env["REELSTREAM_EDGE_SPAM_SCREEN_ENABLED"] = "true"
        # Small caches, so that growth past them (a leak) shows in the RSS check, not the
        # caches filling up to their production bounds with fuzzed ids.
        for setting in ("REEL_CACHE_ENTRIES", "COUNT_CACHE_ENTRIES", "VIEW_DEDUPE_MAX_ENTRIES"):
            env[f"REELSTREAM_EDGE_{setting}"] = "10000"
        env["REELSTREAM_EDGE_SPAM_FORWARD_MAX_EVENTS"] = "10000"
        env.update(extra_edge_env)
        processes["edge"] = start_process("edge", "edge-fuzz", env, addresses["edge"], log_dir)
        for name in ("spam", "edge"):
            wait_serving(processes[name])
        stack.http_address = env["REELSTREAM_EDGE_HTTP_ADDRESS"]
        # The HTTP side starts last in the edge's start-up; give it a moment.
        wait_http(stack.http_address)
    except BaseException:
        stack.close()
        raise
    return stack


def wait_http(address: str, timeout_s: float = 30.0) -> None:
    import socket

    host, port = address.rsplit(":", 1)
    deadline = time.monotonic() + timeout_s
    while True:
        try:
            with socket.create_connection((host, int(port)), timeout=1):
                return
        except OSError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.1)


def drop_keyspace(cassandra: str, keyspace: str) -> None:
    cluster = Cluster([cassandra], protocol_version=5)
    try:
        cluster.connect().execute(f"DROP KEYSPACE IF EXISTS {keyspace}", timeout=60)
    except Exception as exc:
        print(f"could not drop keyspace {keyspace}: {exc}")
    finally:
        cluster.shutdown()


@dataclass(frozen=True)
class FuzzBudget:
    """How many examples per RPC: a bounded selection by default (CI), more under
    `make fuzz` (REELSTREAM_FUZZ_EXAMPLES)."""

    examples: int

    @classmethod
    def from_env(cls) -> FuzzBudget:
        return cls(int(os.environ.get("REELSTREAM_FUZZ_EXAMPLES", "12")))


def fuzz_stack_fixture(
    log_dir: Path, cassandra: str, redis_port: int, extra_edge_env: dict[str, str] | None = None
) -> Iterator[FuzzStack]:
    stack = start_fuzz_stack(log_dir, redis_port, extra_edge_env or {})
    try:
        yield stack
    finally:
        stack.close()
        drop_keyspace(cassandra, stack.keyspace)
