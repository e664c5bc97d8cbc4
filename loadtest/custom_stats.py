"""Figures that are not request latencies, reported through Locust's request event so they
land in its statistics, CSV files and HTML report beside the requests.

Locust only knows "response times", so each figure is one sample in that column (the
name says the unit): request_type "qoe" for the player's quality of experience, and
"rejected" for events an edge refused, one sample per refused event, named by reason
(a failure only when that reason is unexpected for the user class).
"""

from __future__ import annotations

from typing import Any

from locust.env import Environment

from loadtest.player import QoeReport


class UnexpectedRejection(Exception):
    """The edge refused an event this kind of user should never have refused."""


def fire_sample(
    environment: Environment,
    request_type: str,
    name: str,
    value: float,
    context: dict[str, Any],
    exception: BaseException | None = None,
) -> None:
    environment.events.request.fire(
        request_type=request_type,
        name=name,
        response_time=value,
        response_length=0,
        response=None,
        context=context,
        exception=exception,
    )


def fire_qoe(environment: Environment, report: QoeReport, context: dict[str, Any]) -> None:
    """Startup time, rebuffer ratio, average bitrate and switches of one playback."""
    if report.startup_s is None:
        fire_sample(environment, "qoe", "startup_ms", 0.0, context, RuntimeError("never started"))
        return
    fire_sample(environment, "qoe", "startup_ms", report.startup_s * 1000, context)
    fire_sample(environment, "qoe", "rebuffer_permille", report.rebuffer_ratio * 1000, context)
    fire_sample(environment, "qoe", "avg_bitrate_kbps", report.average_bitrate_bps / 1000, context)
    fire_sample(environment, "qoe", "rung_switches", float(report.switches), context)
