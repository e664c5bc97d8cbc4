"""The Grafana dashboard is well-formed and charts only metrics the services export."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]
DASHBOARD = ROOT / "deploy" / "grafana" / "reelstream-dashboard.json"
# Exported by prometheus_client's default process collector, not by our code.
LIBRARY_METRICS = {"process_cpu_seconds_total", "process_resident_memory_bytes"}
METRIC = re.compile(r"\b((?:edge|counter|grpc_server|process)_[a-z0-9_]+)\b")


def load() -> dict[str, Any]:
    document: dict[str, Any] = json.loads(DASHBOARD.read_text())
    return document


def expressions(dashboard: dict[str, Any]) -> list[str]:
    return [t["expr"] for p in dashboard["panels"] for t in p.get("targets", [])]


def defined_metric_names() -> set[str]:
    names: set[str] = set()
    for folder in ("edge", "counter", "origin", "reelstream"):
        for path in (ROOT / folder).rglob("*.py"):
            names.update(
                re.findall(r'"((?:edge|counter|grpc_server)_[a-z0-9_]+)"', path.read_text())
            )
    return names


def test_dashboard_is_a_grafana_dashboard_with_unique_panels() -> None:
    dashboard = load()
    assert dashboard["uid"] == "reelstream-overview"
    ids = [p["id"] for p in dashboard["panels"]]
    assert len(ids) == len(set(ids))
    for panel in dashboard["panels"]:
        grid = panel["gridPos"]
        assert grid["x"] + grid["w"] <= 24, panel["title"]
        if panel["type"] != "row":
            assert panel["targets"], panel["title"]
    for expr in expressions(dashboard):
        assert expr.count("(") == expr.count(")"), expr
        assert expr.count("{") == expr.count("}"), expr


def test_every_charted_metric_is_exported_by_the_services() -> None:
    exported = defined_metric_names() | LIBRARY_METRICS
    charted = set()
    for expr in expressions(load()):
        for name in METRIC.findall(expr):
            charted.add(re.sub(r"_(bucket|sum|count)$", "", name))
    missing = charted - exported
    assert not missing, f"charted but not exported: {sorted(missing)}"
    wanted = {
        "edge_journal_depth_events",
        "edge_batches_acknowledged_total",
        "edge_batch_send_errors_total",
        "counter_batches_applied_total",
        "counter_commit_seconds",
        "counter_snapshot_seconds",
        "counter_reels",
        "grpc_server_handled_total",
        "grpc_server_handling_seconds",
    }
    assert wanted <= charted
