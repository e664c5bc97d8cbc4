"""The pipeline under test: Cassandra, one Redis per edge, counter shards and edges.

It is the stack of `reelstream up` (same `reelstream.stack.plan()`, same ports, pid files and
logs, so `reelstream down` stops the services too) with these differences, each so that a
run starts from a known state and its counts can be checked exactly:

- counter shards use the benchmark's own Cassandra node (`bench_cassandra.py`, 127.0.0.9,
  fresh data every run) and keyspace `reelstream_bench`;
- each edge journals into its own Redis instance (`bench-edge-N` on 6480+N), wiped before
  each run (a fresh incarnation: the new keyspace knows no sequence numbers);
- the edges' view-dedupe window is off (see `workload.py`);
- the edges do not validate reels against the origin (`REELSTREAM_EDGE_VALIDATE_REELS=0`,
  the setting edge/config.py provides for load tests of the counting path alone), so the
  origin is not started and no million-reel catalog has to be imported first;
- by default the edges neither screen for spam nor forward to a spam service; with
  `spam_filter=True` (`spam_cost.py`) they do both, to the stack's spam service (`python -m
  spam`, started between the shards and the edges, verdicts in the benchmark's keyspace,
  no origin: reel durations unknown).

Services of a stack that is already running are stopped first (they hold the ports).
"""

from __future__ import annotations

import dataclasses
import re

from loadtest.bench import bench_cassandra
from loadtest.bench.cassandra_metrics import CassandraAdmin
from reelstream import stack
from reelstream.infra import local_process, redis_server
from reelstream.stack import ServiceSpec

BENCH_KEYSPACE = "reelstream_bench"
EDGE_REDIS_BASE_PORT = 6480
START_TIMEOUT_S = 300.0


def edge_redis_name(index: int) -> str:
    return f"bench-edge-{index}"


def bench_specs(
    edges: int,
    shards: int,
    *,
    keyspace: str = BENCH_KEYSPACE,
    cassandra_hosts: str = bench_cassandra.ADDRESS,
    shard_count: int | None = None,
    spam_filter: bool = False,
) -> list[ServiceSpec]:
    """The stack's counter and edge specs with the benchmark's environment (`shard_count`
    logical shards for both tiers when given, else their default); with `spam_filter` also
    the spam service's, and edges that screen and forward to it."""
    specs = []
    planned = stack.plan(edges, shards)
    spam_address = next(s.address for s in planned if s.module == "spam")
    for spec in planned:
        env = dict(spec.env)
        if shard_count is not None and spec.module in ("counter", "edge", "spam"):
            env[f"REELSTREAM_{spec.module.upper()}_SHARD_COUNT"] = str(shard_count)
        if spec.module == "counter":
            env["REELSTREAM_COUNTER_KEYSPACE"] = keyspace
            env["REELSTREAM_COUNTER_CASSANDRA_HOSTS"] = cassandra_hosts
        elif spec.module == "spam" and spam_filter:
            env["REELSTREAM_SPAM_KEYSPACE"] = keyspace
            env["REELSTREAM_SPAM_CASSANDRA_HOSTS"] = cassandra_hosts
            env["REELSTREAM_SPAM_ORIGIN_ADDRESS"] = ""
        elif spec.module == "edge":
            index = int(spec.name.rsplit("-", 1)[1])
            env["REELSTREAM_EDGE_VIEW_DEDUPE_WINDOW_S"] = "0"
            env["REELSTREAM_EDGE_VALIDATE_REELS"] = "0"
            # By default the counting pipeline alone: no inline spam screen and no
            # forwarding to a spam service (spam_cost.py measures what they add).
            env["REELSTREAM_EDGE_SPAM_SCREEN_ENABLED"] = "true" if spam_filter else "false"
            env["REELSTREAM_EDGE_SPAM_ADDRESS"] = spam_address if spam_filter else ""
            env["REELSTREAM_EDGE_REDIS_URL"] = f"redis://127.0.0.1:{EDGE_REDIS_BASE_PORT + index}/0"
            # Edges register in the service registry: the benchmark's Cassandra, not the
            # development node (which the soak's edges heartbeated in vain, ~3,300 times
            # an hour each, when it was down).
            env["REELSTREAM_EDGE_KEYSPACE"] = keyspace
            env["REELSTREAM_EDGE_CASSANDRA_HOSTS"] = cassandra_hosts
        else:
            continue
        specs.append(dataclasses.replace(spec, env=env))
    return specs


def shift_ports(specs: list[ServiceSpec], offset: int) -> list[ServiceSpec]:
    """The same specs with every port of the stack moved by `offset` (gRPC, metrics, HTTP and
    the edges' Redis, in the env values too), so a second stack (the soak) can run beside
    `make run` or a benchmark."""
    if not offset:
        return specs
    ports = {p for spec in specs for p in (spec.grpc_port, spec.metrics_port)}
    ports |= {EDGE_REDIS_BASE_PORT + i for i in range(len(specs))}
    for spec in specs:
        ports |= {int(p) for p in re.findall(r"127\.0\.0\.1:([0-9]+)", " ".join(spec.env.values()))}

    def moved(text: str) -> str:
        return re.sub(
            r"127\.0\.0\.1:([0-9]+)",
            lambda m: f"127.0.0.1:{int(m[1]) + offset if int(m[1]) in ports else m[1]}",
            text,
        )

    return [
        dataclasses.replace(
            spec,
            grpc_port=spec.grpc_port + offset,
            metrics_port=spec.metrics_port + offset,
            env={
                key: str(int(value) + offset) if key.endswith("METRICS_PORT") else moved(value)
                for key, value in spec.env.items()
            },
        )
        for spec in specs
    ]


def stop_services(specs: list[ServiceSpec], grace_s: float = 20.0) -> None:
    """Stops the given services that run (edges first, so they can flush to the shards; the
    spam service before the shards, so its last judgement's corrections reach them)."""
    for module in ("edge", "spam", "counter", "origin"):
        targets = []
        for spec in specs:
            if spec.module != module:
                continue
            pid = local_process.read_live_pid(spec.pid_file, spec.marker)
            if pid is not None:
                targets.append((pid, spec.marker))
            spec.pid_file.unlink(missing_ok=True)
        if targets:
            local_process.terminate(targets, grace_s)


class BenchStack:
    """Brings the benchmark's pipeline up and down again."""

    def __init__(
        self, edges: int, shards: int, port_offset: int = 0, spam_filter: bool = False
    ) -> None:
        self.specs = shift_ports(bench_specs(edges, shards, spam_filter=spam_filter), port_offset)
        self.edges = edges
        self.redis_base_port = EDGE_REDIS_BASE_PORT + port_offset

    @property
    def edge_addresses(self) -> list[str]:
        return [s.address for s in self.specs if s.module == "edge"]

    @property
    def edge_metrics_ports(self) -> list[int]:
        return [s.metrics_port for s in self.specs if s.module == "edge"]

    @property
    def metrics_ports(self) -> list[int]:
        return [s.metrics_port for s in self.specs]

    def up(self) -> None:
        """Fresh keyspace, fresh journals, then shards, the spam service (if any) and edges,
        waiting for SERVING."""
        running = stack.running_specs()
        if running:
            print(f"stopping running services: {', '.join(s.name for s in running)}", flush=True)
            stop_services(running)
        bench_cassandra.up()
        admin = CassandraAdmin()
        try:
            admin.drop_keyspace(BENCH_KEYSPACE)
        finally:
            admin.close()
        for index in range(self.edges):
            redis_server.wipe(edge_redis_name(index))
            redis_server.up_journal(edge_redis_name(index), self.redis_base_port + index)
        for module in ("counter", "spam", "edge"):
            group = [s for s in self.specs if s.module == module]
            if not group:
                continue
            for spec in group:
                stack.start_service(spec)
            stack.wait_serving(group, START_TIMEOUT_S)
            print(f"{module}s serving: {', '.join(s.address for s in group)}", flush=True)

    def pids(self) -> dict[str, int]:
        """Live pid of every service, edge Redis and the Cassandra node, by name."""
        found: dict[str, int] = {}
        for spec in self.specs:
            pid = local_process.read_live_pid(spec.pid_file, spec.marker)
            if pid is not None:
                found[spec.name] = pid
        for index in range(self.edges):
            pid = redis_server.read_pid(redis_server.instance_spec(edge_redis_name(index)))
            if pid is not None:
                found[f"redis-{edge_redis_name(index)}"] = pid
        cassandra = bench_cassandra.pid()
        if cassandra is not None:
            found["cassandra"] = cassandra
        return found

    def down_pipeline(self) -> None:
        """Stops the services and wipes the benchmark's Redis instances (Cassandra stays)."""
        stop_services(self.specs)
        for index in range(self.edges):
            redis_server.wipe(edge_redis_name(index))
