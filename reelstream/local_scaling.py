"""The autoscaler's hands on the local stack: which replicas run, and resizing edges and
counter processes.

Built on `reelstream/stack.py`'s public functions (`running_specs`, `plan`, `start_service`,
`wait_serving`, `edge_redis_port`) and the pid-file helpers of `reelstream/infra`.

- Edges are added in index order (`edge-N` gets its own Redis on 6390+N, gRPC 50051+N,
  metrics 9151+N, as `make up` would start it) and removed from the highest index down with
  SIGTERM: the edge's shell sets health NOT_SERVING, stops taking RPCs and flushes its journal
  before exiting. Its Redis is left running: anything the drain could not send stays in that
  edge's outbox and is sent when `edge-N` starts again.
- Counter processes are resized through `stack.scale`, exactly as `make scale SHARDS=m`: new
  ones join and take their share of the logical shards, removed ones (highest index first)
  hand theirs off before they exit; it returns once every shard is served by its assigned
  process. The controller only resizes them when started with `--max-counters`.
"""

from __future__ import annotations

from reelstream import stack
from reelstream.autoscaler import Replica, ScaleRefused
from reelstream.infra import local_process, redis_server

START_TIMEOUT_S = 120.0
STOP_GRACE_S = 20.0


class LocalStackDirectory:
    """Replicas of the local stack, from its pid files."""

    def replicas(self, tier: str) -> list[Replica]:
        return [
            Replica(spec.name, f"http://127.0.0.1:{spec.metrics_port}/metrics")
            for spec in stack.running_specs()
            if spec.module == tier
            and local_process.read_live_pid(spec.pid_file, spec.marker) is not None
        ]


class LocalStackActuator:
    """Starts and stops edges and counter processes of the local stack."""

    def scale(self, tier: str, current: int, desired: int) -> None:
        if tier == "counter":
            edges = len(LocalStackDirectory().replicas("edge"))
            stack.scale(edges=edges, shards=desired, timeout_s=START_TIMEOUT_S)
            return
        if tier != "edge":
            raise ScaleRefused(f"{tier}: not resized locally")
        running = [s for s in stack.running_specs() if s.module == "edge"]
        shards = sum(1 for s in stack.running_specs() if s.module == "counter")
        if shards == 0:
            raise RuntimeError("no counter shard is running; start the stack with `make up`")
        if desired > current:
            specs = [s for s in stack.plan(desired, shards) if s.module == "edge"]
            new = [s for s in specs if s.name not in {r.name for r in running}][: desired - current]
            for spec in new:
                index = int(spec.name.rsplit("-", 1)[1])
                redis_server.up(name=spec.name, port=stack.edge_redis_port(index))
                stack.start_service(spec)
            stack.wait_serving(new, START_TIMEOUT_S)
            return
        by_index = sorted(running, key=lambda s: int(s.name.rsplit("-", 1)[1]), reverse=True)
        leaving = by_index[: current - desired]
        targets = []
        for spec in leaving:
            pid = local_process.read_live_pid(spec.pid_file, spec.marker)
            if pid is not None:
                targets.append((pid, spec.marker))
        local_process.terminate(targets, STOP_GRACE_S)
        for spec in leaving:
            spec.pid_file.unlink(missing_ok=True)
