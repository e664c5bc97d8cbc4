"""What the local stack's autoscaler may do, shared by the operator's commands and the
autoscaler process: its bounds file and the scaling lock.

`reelstream up` writes the bounds (per tier: the fewest and most replicas, and whether the
tier is autoscaled or pinned) to `$REELSTREAM_VAR_DIR/run/autoscale-bounds.json`; the
autoscaler it starts re-reads them every round. An operator's `reelstream scale` or `drain`
moves them (`StackBounds.after_operator_resize`), so the autoscaler does not undo the
operator's change: the asked size becomes the tier's floor, the ceiling stays (or rises to
the asked size), a pinned tier stays pinned at the new size.

Only one resize happens at a time: the operator's commands and each autoscaler round hold
`scaling_lock` (an exclusive `flock` on `run/scaling.lock`) while they start or stop
processes, so an operator's resize waits for a round in progress and the next round sees
the operator's result and bounds.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from reelstream.infra.local_process import var_dir

EDGE_CPU_TARGET = 0.6
"""CPU cores an edge should use; more (with the HPA's 10 % tolerance) adds an edge."""

LOCAL_MAX_EDGES = 10
"""edge-10 would take counter-0's ports (gRPC 50051+N, metrics 9151+N)."""
LOCAL_MAX_COUNTERS = 8
"""counter-10 would take the origin's ports (gRPC 50061+N, metrics 9161+N)."""


@dataclass(frozen=True)
class TierBounds:
    """The replica range the autoscaler keeps one tier in."""

    min_replicas: int
    max_replicas: int
    autoscaled: bool = True
    """False: pinned at `min_replicas` (= `max_replicas`); the decisions only report pressure."""

    def __post_init__(self) -> None:
        if not 1 <= self.min_replicas <= self.max_replicas:
            raise ValueError(f"need 1 <= min <= max replicas: {self}")

    def after_operator_resize(self, size: int, max_replicas: int | None = None) -> TierBounds:
        """The bounds once an operator resized the tier to `size` (0 counts as 1: a tier at
        0 replicas is left alone anyway); `max_replicas` sets a new ceiling, which pins the
        tier when it equals `size`."""
        floor = max(1, size)
        if max_replicas is not None:
            ceiling = max(floor, max_replicas)
            return TierBounds(floor, ceiling, autoscaled=ceiling > floor)
        if not self.autoscaled:
            return TierBounds(floor, floor, autoscaled=False)
        return TierBounds(floor, max(floor, self.max_replicas), autoscaled=True)

    def describe(self) -> str:
        if not self.autoscaled:
            return f"pinned at {self.min_replicas}"
        return f"{self.min_replicas}..{self.max_replicas}"


@dataclass(frozen=True)
class StackBounds:
    """Bounds of both tiers the local autoscaler sizes."""

    edge: TierBounds
    counter: TierBounds

    def tier(self, name: str) -> TierBounds:
        if name == "edge":
            return self.edge
        if name == "counter":
            return self.counter
        raise KeyError(name)

    def describe(self) -> str:
        return f"edges {self.edge.describe()}, counters {self.counter.describe()}"


def default_max_edges(edges: int) -> int:
    """Room to grow from `edges` asked at start: double, at least one more, within the
    local port plan."""
    return min(LOCAL_MAX_EDGES, max(2 * edges, edges + 1, 1))


def initial_bounds(
    edges: int, shards: int, max_edges: int | None = None, max_counters: int | None = None
) -> StackBounds:
    """The bounds of a stack started with `edges` edges and `shards` counter processes: at
    least what was asked; edges up to `max_edges` (default `default_max_edges`); counter
    processes pinned unless `max_counters` is given.

    Raises:
        ValueError: a ceiling below what was asked or beyond the local port plan.
    """
    edge_ceiling = default_max_edges(edges) if max_edges is None else max_edges
    if edge_ceiling < max(1, edges) or edge_ceiling > LOCAL_MAX_EDGES:
        raise ValueError(
            f"max edges {edge_ceiling} must be between the edges asked ({edges}) "
            f"and {LOCAL_MAX_EDGES} (the local port plan)"
        )
    if max_counters is not None and not shards <= max_counters <= LOCAL_MAX_COUNTERS:
        raise ValueError(
            f"max counters {max_counters} must be between the counter processes asked "
            f"({shards}) and {LOCAL_MAX_COUNTERS} (the local port plan)"
        )
    edge = TierBounds(max(1, edges), edge_ceiling, autoscaled=edge_ceiling > max(1, edges))
    counter_ceiling = max_counters or shards
    counter = TierBounds(max(1, shards), max(1, counter_ceiling), counter_ceiling > shards)
    return StackBounds(edge, counter)


def bounds_file() -> Path:
    return var_dir() / "run" / "autoscale-bounds.json"


def read_bounds(path: Path | None = None) -> StackBounds | None:
    """The bounds last written, or None when no autoscaler is configured for the stack."""
    try:
        data = json.loads((path or bounds_file()).read_text())
    except FileNotFoundError:
        return None
    return StackBounds(
        **{
            tier: TierBounds(
                int(data[tier]["min"]), int(data[tier]["max"]), bool(data[tier]["autoscaled"])
            )
            for tier in ("edge", "counter")
        }
    )


def write_bounds(bounds: StackBounds, set_by: str, path: Path | None = None) -> None:
    """Writes `bounds` atomically (a reader never sees half a file)."""
    target = path or bounds_file()
    target.parent.mkdir(parents=True, exist_ok=True)
    data: dict[str, object] = {
        tier: {"min": b.min_replicas, "max": b.max_replicas, "autoscaled": b.autoscaled}
        for tier, b in (("edge", bounds.edge), ("counter", bounds.counter))
    }
    data["set_by"] = set_by
    data["at"] = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
    partial = target.with_name(target.name + ".tmp")
    partial.write_text(json.dumps(data, indent=1) + "\n")
    partial.replace(target)


def remove_bounds(path: Path | None = None) -> None:
    (path or bounds_file()).unlink(missing_ok=True)


@contextlib.contextmanager
def scaling_lock(on_wait: str = "", path: Path | None = None) -> Iterator[None]:
    """Holds the stack's scaling lock; prints `on_wait` first if someone else holds it."""
    target = path or var_dir() / "run" / "scaling.lock"
    target.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(target, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            if on_wait:
                print(on_wait, flush=True)
            fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)  # closing the descriptor releases the lock
