"""The autoscaler's hands on the local stack: which replicas run, and resizing edges and
counter processes.

Built on `reelstream/stack.py`'s public functions (`running_specs`, `plan`, `start_service`,
`wait_serving`, `edge_redis_port`) and the pid-file helpers of `reelstream/infra`.

- Edges are added in index order (`edge-N` gets its own Redis on 6390+N, gRPC 50051+N,
  metrics 9151+N, as `make up` would start it) and removed from the highest index down with
  SIGTERM: the edge's shell sets health NOT_SERVING, stops taking RPCs and flushes its journal
  before exiting. Its Redis is left running: anything the drain could not send stays in that
  edge's outbox and is sent when `edge-N` starts again.
- Counter processes are resized through `stack.resize`, the code of `make scale SHARDS=m`
  (without its lock and bounds update: the autoscaler's round already holds the lock): new
  ones join and take their share of the logical shards, removed ones (highest index first)
  hand theirs off before they exit; it returns once every shard is served by its assigned
  process. The controller only resizes them when its counter bounds are a range
  (`--max-counters`).

For the stack's own autoscaler (`--supervised`), `SupervisedChecks` runs before each
round: it applies the bounds file, leaves when `StackAnchor` says the stack it was started
for is gone (its origin stopped: `reelstream down` stops the autoscaler first, so this
catches anything else that stopped the stack, such as a benchmark taking over its ports),
and holds a tier found below its floor for one round (a stack being stopped from outside
must not get processes started back into it).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Protocol

from reelstream import stack
from reelstream.autoscaler import (
    AutoscaleController,
    Replica,
    ReplicaDirectory,
    ScaleRefused,
    apply_bounds,
)
from reelstream.infra import local_process, redis_server
from reelstream.scaling_bounds import read_bounds

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
            stack.resize(edges=edges, shards=desired, timeout_s=START_TIMEOUT_S)
            return
        if tier != "edge":
            raise ScaleRefused(f"{tier}: not resized locally")
        # Live processes only: a killed edge leaves its pid file behind, and must count as
        # missing (so that it is started again), not as running.
        live = [
            s
            for s in stack.running_specs()
            if local_process.read_live_pid(s.pid_file, s.marker) is not None
        ]
        running = [s for s in live if s.module == "edge"]
        shards = sum(1 for s in live if s.module == "counter")
        if shards == 0:
            raise RuntimeError("no counter shard is running; start the stack with `make up`")
        if desired > current:
            specs = [s for s in stack.plan(desired, shards) if s.module == "edge"]
            new = [s for s in specs if s.name not in {r.name for r in running}][: desired - current]
            for spec in new:
                index = int(spec.name.rsplit("-", 1)[1])
                redis_server.up_journal(spec.name, stack.edge_redis_port(index))
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


class StackAnchor:
    """The stack a supervised autoscaler was started for, known by its origin process."""

    def __init__(self) -> None:
        self._had_origin = self._origin_pid() is not None

    @staticmethod
    def _origin_pid() -> int | None:
        spec = next((s for s in stack.running_specs() if s.module == "origin"), None)
        return None if spec is None else local_process.read_live_pid(spec.pid_file, spec.marker)

    def gone(self) -> str:
        """Why the stack is no longer there, or "" while it is. (An origin restarted by
        `make up` is the same stack; one stopped by anything is not.)"""
        if not self._had_origin or self._origin_pid() is not None:
            return ""
        return "the stack it was started for is gone (its origin process stopped)"


def supervised_autoscaler_pid() -> int | None:
    """The pid of the autoscaler `reelstream up` started, while it runs."""
    spec = stack.autoscaler_spec()
    return local_process.read_live_pid(spec.pid_file, spec.marker)


@dataclass
class SupervisedChecks:
    """Before each round of the stack's autoscaler: is the stack still the one it was
    started for, what are its bounds now, and did a tier lose replicas nobody stopped.

    A tier found below its floor is not topped up on the round that first sees it: a stack
    being stopped by something other than `reelstream down` (a benchmark taking over the
    ports stops edges, then counters, then the origin) would otherwise get processes started
    back into it. If the tier is still short a round later (a crash), it is topped up; if
    the origin is gone by then, the autoscaler leaves instead.
    """

    anchor: StackPresence
    directory: ReplicaDirectory
    _short: set[str] = field(default_factory=set)

    def __call__(self, controller: AutoscaleController) -> tuple[str, dict[str, str]]:
        gone = self.anchor.gone()
        if gone:
            return gone, {}
        bounds = read_bounds()
        if bounds is None:
            return "the stack has no autoscaler bounds any more (stopped, or up without one)", {}
        apply_bounds(controller, bounds)
        hold: dict[str, str] = {}
        for tier in ("edge", "counter"):
            running = len(self.directory.replicas(tier))
            floor = bounds.tier(tier).min_replicas
            if 0 < running < floor and tier not in self._short:
                hold[tier] = (
                    f"{running} running, below the floor of {floor}, and not by an operator: "
                    "topped up next round if still short"
                )
                self._short.add(tier)
            elif running >= floor or running == 0:
                self._short.discard(tier)
        return "", hold


class StackPresence(Protocol):
    """Tells whether the stack a supervised autoscaler serves is still there."""

    def gone(self) -> str: ...
