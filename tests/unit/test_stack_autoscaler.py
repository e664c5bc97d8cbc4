"""The autoscaler as part of the local stack: `up` starts it with bounds from what was asked,
an operator's `scale` and `drain` move those bounds instead of being undone, `down` stops it
first, and the supervised process follows its bounds file and stops when told to."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from reelstream import autoscaler, cli, local_scaling, stack
from reelstream.autoscaler import (
    AutoscaleController,
    Replica,
    StaticDirectory,
    apply_bounds,
    default_tiers,
    last_decisions,
)
from reelstream.infra import cassandra_node, local_process, redis_server
from reelstream.metrics_scrape import ScrapeError
from reelstream.scaling_bounds import (
    StackBounds,
    TierBounds,
    initial_bounds,
    read_bounds,
    scaling_lock,
    write_bounds,
)

REPO_ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(autouse=True)
def var_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Every test gets its own `$REELSTREAM_VAR_DIR` (pid files, logs, bounds, lock)."""
    monkeypatch.setenv("REELSTREAM_VAR_DIR", str(tmp_path))
    return tmp_path


def test_up_bounds_start_at_what_was_asked_with_room_for_edges() -> None:
    bounds = initial_bounds(edges=2, shards=2)
    assert (bounds.edge.min_replicas, bounds.edge.max_replicas) == (2, 4)
    assert bounds.edge.autoscaled
    # Counter processes stay at the count asked unless a ceiling is given.
    assert (bounds.counter.min_replicas, bounds.counter.max_replicas) == (2, 2)
    assert not bounds.counter.autoscaled
    assert initial_bounds(1, 1).edge.max_replicas == 2
    assert initial_bounds(8, 1).edge.max_replicas == 10  # the local port plan's limit
    ranged = initial_bounds(2, 2, max_edges=3, max_counters=4)
    assert ranged.describe() == "edges 2..3, counters 2..4"


@pytest.mark.parametrize(
    ("edges", "shards", "max_edges", "max_counters"),
    [(3, 2, 2, None), (2, 2, 11, None), (2, 3, None, 2), (2, 2, None, 9)],
)
def test_up_refuses_ceilings_below_the_ask_or_beyond_the_ports(
    edges: int, shards: int, max_edges: int | None, max_counters: int | None
) -> None:
    with pytest.raises(ValueError, match="must be between"):
        initial_bounds(edges, shards, max_edges, max_counters)


def test_an_operator_resize_becomes_the_floor_and_keeps_the_ceiling() -> None:
    edges = TierBounds(2, 4)
    assert edges.after_operator_resize(3) == TierBounds(3, 4)
    assert edges.after_operator_resize(6) == TierBounds(6, 6)  # the ceiling rises to the ask
    assert edges.after_operator_resize(1) == TierBounds(1, 4)
    assert edges.after_operator_resize(0) == TierBounds(1, 4)
    # A new ceiling equal to the size pins the tier; a pinned tier stays pinned.
    pinned = edges.after_operator_resize(3, max_replicas=3)
    assert pinned == TierBounds(3, 3, autoscaled=False)
    assert pinned.after_operator_resize(2) == TierBounds(2, 2, autoscaled=False)
    assert pinned.after_operator_resize(2, max_replicas=5) == TierBounds(2, 5)


def test_bounds_file_round_trips() -> None:
    assert read_bounds() is None
    bounds = StackBounds(TierBounds(2, 4), TierBounds(3, 3, autoscaled=False))
    write_bounds(bounds, "test")
    assert read_bounds() == bounds


def test_operator_scale_moves_the_bounds_under_the_lock(monkeypatch: pytest.MonkeyPatch) -> None:
    write_bounds(initial_bounds(2, 2), "up")
    resized: list[tuple[int, int, StackBounds | None]] = []

    def resize(edges: int, shards: int, timeout_s: float) -> None:
        assert lock_held()  # an autoscaler round could not run now
        resized.append((edges, shards, read_bounds()))

    monkeypatch.setattr(stack, "resize", resize)
    stack.scale(edges=3, shards=1)
    after = StackBounds(TierBounds(3, 4), TierBounds(1, 1, autoscaled=False))
    assert resized == [(3, 1, after)]
    stack.scale(edges=1, shards=2, max_edges=1, max_counters=3)
    assert read_bounds() == StackBounds(TierBounds(1, 1, autoscaled=False), TierBounds(2, 3))
    with pytest.raises(RuntimeError, match="room for 10 edges"):
        stack.scale(edges=2, shards=2, max_edges=12)


def test_operator_scale_without_an_autoscaler_writes_no_bounds(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(stack, "resize", lambda edges, shards, timeout_s: None)
    stack.scale(edges=3, shards=2)
    assert read_bounds() is None


def test_draining_below_the_floor_lowers_it(monkeypatch: pytest.MonkeyPatch) -> None:
    write_bounds(initial_bounds(2, 2), "up")
    running = {"edge": 2, "counter": 2}

    def drain(name: str, grace_s: float = 0.0) -> None:
        running[name.rsplit("-", 1)[0]] -= 1

    monkeypatch.setattr(stack, "_drain", drain)
    monkeypatch.setattr(
        stack, "_running", lambda module: [stack.plan(0, 0)[0]] * running.get(module, 0)
    )
    stack.drain("edge-1")
    assert read_bounds() == StackBounds(TierBounds(1, 4), TierBounds(2, 2, autoscaled=False))
    stack.drain("counter-1")
    assert read_bounds() == StackBounds(TierBounds(1, 4), TierBounds(1, 1, autoscaled=False))


def test_stopping_the_stack_stops_the_autoscaler_before_any_service(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    order: list[str] = []
    monkeypatch.setattr(stack, "stop_autoscaler", lambda grace_s=0.0: order.append("autoscaler"))
    monkeypatch.setattr(
        stack, "_stop", lambda specs, grace_s: order.extend(s.module for s in specs)
    )
    monkeypatch.setattr(stack, "running_specs", lambda: stack.plan(1, 1))
    stack.stop_services()
    assert order[:2] == ["autoscaler", "edge"]
    assert "autoscaler" not in order[1:]


def test_up_starts_the_autoscaler_last_and_no_autoscale_stops_it(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    events: list[str] = []

    def start_service(spec: stack.ServiceSpec) -> int:
        events.append(spec.name)
        return 1

    monkeypatch.setattr(cassandra_node, "up", lambda nodes, timeout_s: None)
    monkeypatch.setattr(redis_server, "up_journal", lambda name, port: None)
    monkeypatch.setattr(stack, "start_service", start_service)
    monkeypatch.setattr(stack, "wait_serving", lambda specs, timeout_s: events.append("serving"))
    monkeypatch.setattr(stack, "stop_autoscaler", lambda grace_s=0.0: events.append("stopped"))
    monkeypatch.setenv("REELSTREAM_PLAINTEXT", "1")

    stack.up(1, 1, autoscaler=stack.AutoscalerSettings(interval_s=5, scale_down_window_s=60))
    assert events[-2:] == ["serving", "autoscaler"]
    assert read_bounds() == initial_bounds(1, 1)

    # A running autoscaler: kept when its settings are the same, stopped before anything
    # else when the stack is to be fixed-size (or its settings changed).
    monkeypatch.setattr(
        local_process,
        "read_live_pid",
        lambda pid_file, marker: 77 if pid_file.stem == "autoscaler" else None,
    )
    monkeypatch.setattr(stack, "_runs_with", lambda pid, args: True)
    events.clear()
    stack.up(1, 1, autoscaler=stack.AutoscalerSettings(interval_s=5, scale_down_window_s=60))
    assert "autoscaler" not in events
    assert "stopped" not in events
    events.clear()
    stack.up(1, 1, autoscaler=None)
    assert events[0] == "stopped"
    assert "autoscaler" not in events
    with pytest.raises(RuntimeError, match="must be between"):
        stack.up(3, 1, autoscaler=stack.AutoscalerSettings(max_edges=2))


def test_cli_up_runs_the_autoscaler_unless_told_not_to(monkeypatch: pytest.MonkeyPatch) -> None:
    seen: list[stack.AutoscalerSettings | None] = []

    def up(
        edges: int,
        shards: int,
        timeout_s: float,
        autoscaler: stack.AutoscalerSettings | None,
        shared_cassandra: bool,
    ) -> list[stack.ServiceSpec]:
        seen.append(autoscaler)
        return []

    monkeypatch.setattr(stack, "up", up)
    assert cli.main(["up", "--edges", "2", "--max-edges", "3", "--autoscale-interval", "5"]) == 0
    assert seen[-1] == stack.AutoscalerSettings(max_edges=3, interval_s=5.0)
    assert cli.main(["up", "--no-autoscale"]) == 0
    assert seen[-1] is None


def test_the_supervised_process_spec_is_a_tracked_process_with_a_log() -> None:
    settings = stack.AutoscalerSettings(interval_s=2, scale_down_window_s=10, edge_cpu_target=0.3)
    spec = stack.autoscaler_spec(settings)
    assert spec.pid_file == stack.var_dir() / "run" / "autoscaler.pid"
    assert spec.log_file == stack.var_dir() / "log" / "autoscaler.log"
    assert spec.args == (
        *("--supervised", "--interval", "2", "--scale-down-window", "10"),
        *("--edge-cpu-target", "0.3"),
    )
    parsed = autoscaler.build_parser().parse_args(list(spec.args))
    assert parsed.edge_cpu_target == 0.3
    edge, _ = autoscaler.default_tiers(edge_cpu_cores=parsed.edge_cpu_target)
    assert {s.name: s.target for s in edge.signals}["cpu_cores"] == 0.3
    # Not one of the services: benchmarks and `scale` list those by module.
    assert "autoscaler" not in {s.name for s in stack.running_specs()}


class IdleSource:
    def fetch(self, url: str) -> str:
        raise ScrapeError("no page")


def test_new_bounds_apply_at_once_and_keep_the_history() -> None:
    edge, counter = default_tiers(max_edges=4, shards=2)
    directory = StaticDirectory({"edge": [Replica("edge-0", "u0")], "counter": []})
    controller = AutoscaleController((edge, counter), directory, None, source=IdleSource())
    apply_bounds(controller, StackBounds(TierBounds(2, 4), TierBounds(2, 2, False)))
    assert controller.bounds("edge") == (2, 4)
    edge_round = controller.run_round()[0]
    assert (edge_round.decision.current, edge_round.decision.desired) == (1, 2)
    assert "below min_replicas 2" in edge_round.decision.reason
    assert not controller.set_bounds("edge", 2, 4)  # unchanged: nothing to log


def test_foreground_autoscaler_refuses_to_fight_the_stacks_own(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setattr(local_scaling, "supervised_autoscaler_pid", lambda: 4242)
    with pytest.raises(SystemExit):
        autoscaler.main(["--rounds", "1"])
    assert "pid 4242" in capsys.readouterr().err


def test_status_shows_the_last_decision_per_tier(tmp_path: Path) -> None:
    log = tmp_path / "autoscaler.log"
    log.write_text(
        "ts=2026-11-27T01:00:00.000Z level=info service=autoscaler logger=reelstream.autoscaler "
        'msg="autoscale decision" tier=edge action=hold current=2 desired=2 proposal=1 '
        'reason="cpu_cores at 0.01x target proposes 1; scale-down held" mode=act\n'
        "ts=2026-11-27T01:00:15.000Z level=info service=autoscaler logger=reelstream.autoscaler "
        'msg="autoscale decision" tier=edge action=scale-up current=2 desired=3 proposal=3 '
        'reason="cpu_cores at 1.40x target proposes 3" mode=act\n'
    )
    decisions = last_decisions(log)
    assert decisions["edge"]["action"] == "scale-up"
    assert decisions["edge"]["reason"] == "cpu_cores at 1.40x target proposes 3"
    assert decisions["edge"]["desired"] == "3"


def lock_held() -> bool:
    """True while some process holds the stack's scaling lock (asked from another process)."""
    probe = ["flock", "--nonblock", str(stack.var_dir() / "run" / "scaling.lock"), "true"]
    return subprocess.run(probe, check=False).returncode != 0


def test_scaling_lock_serialises_resizes() -> None:
    with scaling_lock():
        assert lock_held()
    assert not lock_held()


def start_supervised(var_dir: Path, *extra: str) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [
            sys.executable,
            "-m",
            "reelstream.autoscaler",
            "--label=autoscaler",
            "--supervised",
            "--interval",
            "0.2",
            *extra,
        ],
        cwd=REPO_ROOT,
        env={**os.environ, "REELSTREAM_VAR_DIR": str(var_dir)},
        stderr=subprocess.PIPE,
        text=True,
    )


def test_supervised_autoscaler_follows_its_bounds_and_stops_on_sigterm(var_dir: Path) -> None:
    write_bounds(initial_bounds(2, 1), "up")
    process = start_supervised(var_dir)
    try:
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline and process.poll() is None:
            time.sleep(0.2)
            if (var_dir / "run" / "scaling.lock").exists():
                break
        time.sleep(1.0)  # a few rounds: no replicas, so every decision holds
        process.send_signal(signal.SIGTERM)
        _, err = process.communicate(timeout=30)
    finally:
        if process.poll() is None:
            process.kill()
            process.communicate()
    assert process.returncode == 0, err
    assert 'msg="bounds changed" tier=edge min=2 max=4' in err, err
    assert 'msg="autoscaler stopped" rounds=' in err, err
    assert "reason=SIGTERM" in err, err


def test_supervised_autoscaler_leaves_when_the_stack_has_no_bounds(var_dir: Path) -> None:
    process = start_supervised(var_dir)
    _, err = process.communicate(timeout=60)
    assert process.returncode == 0
    assert "no autoscaler bounds" in err, err


class StayingAnchor:
    def __init__(self) -> None:
        self.reason = ""

    def gone(self) -> str:
        return self.reason


class RecordingActuator:
    def __init__(self) -> None:
        self.calls: list[tuple[str, int, int]] = []

    def scale(self, tier: str, current: int, desired: int) -> None:
        self.calls.append((tier, current, desired))


def test_a_tier_short_of_its_floor_is_topped_up_only_if_still_short_a_round_later() -> None:
    write_bounds(initial_bounds(2, 1), "up")
    directory = StaticDirectory(
        {"edge": [Replica("edge-0", "u0")], "counter": [Replica("counter-0", "c0")]}
    )
    anchor, actuator = StayingAnchor(), RecordingActuator()
    checks = local_scaling.SupervisedChecks(anchor, directory)
    edge, counter = default_tiers(max_edges=4, shards=1)
    controller = AutoscaleController((edge, counter), directory, actuator, source=IdleSource())

    stop, hold = checks(controller)
    assert stop == ""
    assert set(hold) == {"edge"}  # edge-1 vanished and nobody stopped it: wait a round
    (edge_round, _) = controller.run_round(hold)
    assert edge_round.decision.desired == 2
    assert edge_round.held
    assert actuator.calls == []

    stop, hold = checks(controller)
    assert hold == {}  # still short: a crash, not a shutdown under way
    controller.run_round(hold)
    assert actuator.calls == [("edge", 1, 2)]

    anchor.reason = "the stack it was started for is gone"
    assert checks(controller)[0] == anchor.reason


def test_a_killed_edge_with_its_pid_file_left_is_started_again(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    specs = stack.plan(2, 1)
    started: list[str] = []
    monkeypatch.setattr(stack, "running_specs", lambda: specs)
    monkeypatch.setattr(
        local_process,
        "read_live_pid",
        lambda pid_file, marker: None if pid_file.stem == "edge-1" else 1,
    )
    monkeypatch.setattr(redis_server, "up_journal", lambda name, port: None)

    def start_service(spec: stack.ServiceSpec) -> int:
        started.append(spec.name)
        return 1

    monkeypatch.setattr(stack, "start_service", start_service)
    monkeypatch.setattr(stack, "wait_serving", lambda new, timeout_s: None)
    local_scaling.LocalStackActuator().scale("edge", 1, 2)
    assert started == ["edge-1"]
