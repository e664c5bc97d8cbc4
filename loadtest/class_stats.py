"""Requests and failures per user class, beside Locust's per-request statistics.

Locust's CSV files group by request name, not by who made the request; this module counts
by the `user_class` every request's context carries, ships the counts from workers to the
master with the regular worker reports, and writes `<csv prefix>_user_classes.csv` when
Locust quits (on the master, or the single process of a local run).
"""

from __future__ import annotations

import csv
from collections import Counter
from pathlib import Path
from typing import Any

from locust.env import Environment
from locust.runners import WorkerRunner

REPORT_KEY = "reelstream_user_classes"


class UserClassStats:
    """Per-class request and failure counts of one Locust process."""

    def __init__(self) -> None:
        self.requests: Counter[str] = Counter()
        self.failures: Counter[str] = Counter()

    def on_request(
        self,
        request_type: str,
        name: str,
        response_time: float,
        response_length: int,
        exception: BaseException | None = None,
        context: dict[str, Any] | None = None,
        **_: Any,
    ) -> None:
        user_class = str((context or {}).get("user_class", "unknown"))
        self.requests[user_class] += 1
        if exception is not None:
            self.failures[user_class] += 1

    def drain(self) -> dict[str, list[int]]:
        """The counts since the last drain (a worker's report), then zero."""
        report = {
            name: [self.requests[name], self.failures[name]] for name in sorted(self.requests)
        }
        self.requests.clear()
        self.failures.clear()
        return report

    def merge(self, report: dict[str, list[int]]) -> None:
        for name, (requests, failures) in report.items():
            self.requests[name] += requests
            self.failures[name] += failures

    def write_csv(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        with path.open("w", newline="") as file:
            writer = csv.writer(file)
            writer.writerow(["User class", "Requests", "Failures"])
            for name in sorted(self.requests):
                writer.writerow([name, self.requests[name], self.failures[name]])


def install(environment: Environment) -> UserClassStats:
    """Hooks the counting, the worker-to-master transfer and the CSV file into Locust."""
    stats = UserClassStats()
    events = environment.events
    events.request.add_listener(stats.on_request)

    def report_to_master(client_id: str, data: dict[str, Any]) -> None:
        data[REPORT_KEY] = stats.drain()

    def worker_report(client_id: str, data: dict[str, Any]) -> None:
        stats.merge(data.get(REPORT_KEY, {}))

    def quitting(environment: Environment, **_: Any) -> None:
        prefix = getattr(environment.parsed_options, "csv_prefix", None)
        if prefix and not isinstance(environment.runner, WorkerRunner):
            stats.write_csv(Path(f"{prefix}_user_classes.csv"))

    events.report_to_master.add_listener(report_to_master)
    events.worker_report.add_listener(worker_report)
    events.quitting.add_listener(quitting)
    return stats
