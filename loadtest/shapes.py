"""The load shape of a run, chosen by REELSTREAM_LOADTEST_SHAPE (steady, ramp, spike,
diurnal; see shape_profiles.py) with _SHAPE_USERS, _SHAPE_DURATION_S, _SHAPE_SPAWN_RATE."""

from __future__ import annotations

from locust import LoadTestShape

from loadtest import suite_config
from loadtest.shape_profiles import LoadProfile


class ReelstreamShape(LoadTestShape):
    """Users over time from the configured profile; the run ends with the profile."""

    def __init__(self) -> None:
        super().__init__()  # type: ignore[no-untyped-call]
        settings = suite_config.settings()
        self.profile = LoadProfile(
            settings.shape,
            settings.shape_users,
            settings.shape_duration_s,
            settings.shape_spawn_rate,
        )

    def tick(self) -> tuple[int, float] | None:
        point = self.profile.at(self.get_run_time())  # type: ignore[no-untyped-call]
        return None if point is None else (point.users, point.spawn_rate)
