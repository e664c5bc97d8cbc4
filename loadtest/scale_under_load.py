"""`make loadtest-scale`: the stack is scaled up and down under a headless Locust run, and
must keep Locust's failure ratio below 0.1% and every count exact.

Against the running local stack (`make up`, 2 edges and 2 counter processes or more). While
Locust's viewers run (`viewer` weight only: their calls are the product's client traffic),
a counted load (`loadtest/counted_load.py`) sends views whose outcome is known call by call
to edge-0, and the schedule below resizes the stack with the same code as `make scale`:

  counters +1, edges +1, counters down to 1, edges down to 1 (the drained edges include one
  Locust's viewers use), then back to the size found.

Afterwards the edges' journals must drain, Locust's CSV statistics give the failure ratio
(every request Locust recorded, and the gRPC calls alone), and the counted load's reels are
read back through edge-0. Results go to results/scale-under-load.json; the exit status is 1
when the failure ratio is 0.1% or more or a count is wrong.

Knobs (environment): SCALE_LOADTEST_USERS (20), SCALE_LOADTEST_SETTLE_S (10: pause between
steps, and before the first), SCALE_LOADTEST_OUT (results/scale-under-load).
"""

from __future__ import annotations

import csv
import json
import os
import re
import subprocess
import sys
import threading
import time
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from loadtest.counted_load import CountedLoad, check_counts, import_reels
from reelstream import stack

MAX_FAILURE_RATIO = 0.001
# Row types of the suite's own samples (docs/loadtest.md), not requests.
SAMPLE_TYPES = frozenset({"rejected", "qoe", "upload"})
MAX_COUNTED_CALLS = 20_000
LOCUST_MAX_SECONDS = 600
DRAIN_TIMEOUT_S = 120.0
REPO_ROOT = Path(__file__).resolve().parent.parent
# (Not loadtest.bench.exactness: importing loadtest.bench switches this process to plaintext.)
JOURNAL_DEPTH = re.compile(r"^edge_journal_depth_events\s+([0-9.e+]+)$", re.MULTILINE)


def wait_drained(metrics_ports: list[int], timeout_s: float) -> float:
    """Seconds until every edge's `edge_journal_depth_events` is 0.

    Raises:
        TimeoutError: events still unacknowledged after `timeout_s`.
    """
    began = time.monotonic()
    while True:
        depths = []
        for port in metrics_ports:
            url = f"http://127.0.0.1:{port}/metrics"
            with urllib.request.urlopen(url, timeout=5) as response:
                match = JOURNAL_DEPTH.search(response.read().decode())
            depths.append(int(float(match.group(1))) if match else -1)
        if not any(depths):
            return time.monotonic() - began
        if time.monotonic() - began > timeout_s:
            raise TimeoutError(f"journals still hold {depths} events after {timeout_s:.0f} s")
        time.sleep(0.25)


@dataclass
class StepLog:
    """What the schedule did, with when (seconds after the load started) and how long."""

    steps: list[dict[str, object]] = field(default_factory=list)
    error: str = ""


def schedule(edges: int, counters: int) -> list[tuple[int, int]]:
    """(edges, counter processes) to scale to, in order, from a stack of that size."""
    return [
        (edges, counters + 1),
        (edges + 1, counters + 1),
        (edges + 1, 1),
        (1, 1),
        (edges, counters),
    ]


def run_schedule(steps: list[tuple[int, int]], settle_s: float, began: float, log: StepLog) -> None:
    for edges, counters in steps:
        time.sleep(settle_s)
        at = time.monotonic() - began
        try:
            stack.scale(edges=edges, shards=counters)
        except RuntimeError as exc:
            log.error = f"scale to {edges} edges, {counters} counters failed: {exc}"
            return
        took = time.monotonic() - began - at
        log.steps.append(
            {"edges": edges, "counters": counters, "at_s": round(at, 1), "took_s": round(took, 1)}
        )
        print(f"  t={at:5.1f} s: scaled to {edges} edges, {counters} counters in {took:.1f} s")
    time.sleep(settle_s)


def locust_command(prefix: Path, users: int) -> list[str]:
    return [
        sys.executable, "-m", "locust", "-f", "loadtest/locustfile.py", "--headless",
        "-u", str(users), "-r", str(users), "-t", f"{LOCUST_MAX_SECONDS}s",
        "--stop-timeout", "5", "--csv", str(prefix), "--only-summary",
        "--loglevel", "WARNING", "--exit-code-on-error", "0",
    ]  # fmt: skip


def failure_ratios(stats_csv: Path) -> dict[str, Any]:
    """Requests (gRPC calls and HTTP requests), their failures and the ratio; the suite's
    per-event samples (`rejected`: one per refused event, `qoe`, `upload`) are not requests
    and are reported apart, refusals by reason."""
    with stats_csv.open(newline="") as file:
        rows = [r for r in csv.DictReader(file) if r["Name"] != "Aggregated"]
    calls = [r for r in rows if r["Type"] not in SAMPLE_TYPES]
    requests = sum(int(r["Request Count"]) for r in calls)
    failures = sum(int(r["Failure Count"]) for r in calls)
    return {
        "requests": requests,
        "failures": failures,
        "failure_ratio": failures / requests if requests else 1.0,
        "failures_by_name": {r["Name"]: int(r["Failure Count"]) for r in calls},
        "unexpected_event_refusals": {
            r["Name"]: int(r["Failure Count"]) for r in rows if r["Type"] == "rejected"
        },
    }


def main() -> int:
    users = int(os.environ.get("SCALE_LOADTEST_USERS", "20"))
    settle_s = float(os.environ.get("SCALE_LOADTEST_SETTLE_S", "10"))
    out = Path(os.environ.get("SCALE_LOADTEST_OUT", "results/scale-under-load"))
    out.mkdir(parents=True, exist_ok=True)
    specs = {s.name: s for s in stack.running_specs()}
    edges = sorted(n for n in specs if n.startswith("edge-"))
    counters = [n for n in specs if n.startswith("counter-")]
    if len(edges) < 2 or not counters or "origin" not in specs:
        print("needs the local stack with 2 edges or more: run `make up` first", file=sys.stderr)
        return 2
    edge0 = specs["edge-0"].address
    locust_edges = [specs[name].address for name in edges]
    base = 10**10 + (int(time.time()) % 10**7) * MAX_COUNTED_CALLS
    reels = range(base, base + MAX_COUNTED_CALLS)
    import_reels(specs["origin"].address, reels)
    env = {
        **os.environ,
        "REELSTREAM_LOADTEST_EDGES": ",".join(locust_edges),
        "REELSTREAM_LOADTEST_WEIGHTS": (
            "viewer=1,player_viewer=0,creator=0,short_watch_bot=0,lockstep_bot=0,"
            "like_farm_bot=0,camouflaged_bot=0,geo_hopping_bot=0,takeover_bot=0,slow_drip_bot=0"
        ),
        "REELSTREAM_LOADTEST_TIME_SCALE": os.environ.get("REELSTREAM_LOADTEST_TIME_SCALE", "0.1"),
    }
    prefix = out / "run"
    locust = subprocess.Popen(locust_command(prefix, users), cwd=REPO_ROOT, env=env)
    counted = CountedLoad(edge0, reels)
    log = StepLog()
    began = time.monotonic()
    counted.start()
    steps = schedule(len(edges), len(counters))
    scaler = threading.Thread(target=run_schedule, args=(steps, settle_s, began, log))
    scaler.start()
    try:
        scaler.join()
    finally:
        counted.stop()
        locust.terminate()  # Locust stops its users and writes the CSV files on SIGTERM
        locust.wait(timeout=60)
    live_edges = [s for s in stack.running_specs() if s.module == "edge"]

    drain_s = wait_drained([s.metrics_port for s in live_edges], DRAIN_TIMEOUT_S)
    counts = check_counts(counted.ledger, edge0)
    ratios = failure_ratios(Path(f"{prefix}_stats.csv"))
    passed = not log.error and counts.exact and ratios["failure_ratio"] < MAX_FAILURE_RATIO
    result = {
        "passed": passed,
        "locust_users": users,
        "load_seconds": round(time.monotonic() - began, 1),
        "schedule": log.steps,
        "schedule_error": log.error,
        "locust": ratios,
        "max_failure_ratio": MAX_FAILURE_RATIO,
        "counted_load": counts.as_dict(),
        "journals_drained_after_s": round(drain_s, 1),
    }
    (REPO_ROOT / "results").mkdir(exist_ok=True)
    Path("results/scale-under-load.json").write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps(result, indent=2))
    print(f"failures: see {prefix}_failures.csv")
    return 0 if passed else 1


if __name__ == "__main__":
    sys.exit(main())
