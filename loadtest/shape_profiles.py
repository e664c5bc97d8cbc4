"""Load profiles over time: how many users should run `t` seconds into a test.

Pure code (no Locust import, so it is testable without gevent's monkey patching);
`loadtest/shapes.py` wraps a profile into Locust's LoadTestShape.

- steady: `peak_users` for the whole duration.
- ramp: linear from 1 to `peak_users` over the duration's first 80 %, then held.
- spike: a viral reel: `base` users (25 % of the peak), a jump to `peak_users` at 40 % of the
  duration held for 20 %, then back to the base.
- diurnal: one day compressed into the duration: a sine between 20 % of the peak (night)
  and the peak (evening), starting at night.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

PROFILE_NAMES = ("steady", "ramp", "spike", "diurnal")


@dataclass(frozen=True)
class ShapeTick:
    users: int
    spawn_rate: float


@dataclass(frozen=True)
class LoadProfile:
    name: str
    peak_users: int
    duration_s: float
    spawn_rate: float

    def __post_init__(self) -> None:
        if self.name not in PROFILE_NAMES:
            raise ValueError(f"unknown shape {self.name!r}; choose one of {PROFILE_NAMES}")
        if self.peak_users < 1 or self.duration_s <= 0 or self.spawn_rate <= 0:
            raise ValueError("peak_users, duration_s and spawn_rate must be positive")

    def at(self, elapsed_s: float) -> ShapeTick | None:
        """Users wanted at `elapsed_s`, or None once the test is over."""
        if elapsed_s >= self.duration_s:
            return None
        fraction = elapsed_s / self.duration_s
        peak = self.peak_users
        if self.name == "steady":
            users = peak
        elif self.name == "ramp":
            users = 1 + round((peak - 1) * min(1.0, fraction / 0.8))
        elif self.name == "spike":
            base = max(1, peak // 4)
            users = peak if 0.4 <= fraction < 0.6 else base
        else:
            low = max(1, round(peak * 0.2))
            level = (1 - math.cos(2 * math.pi * fraction)) / 2  # 0 at night, 1 mid-run
            users = low + round((peak - low) * level)
        # A spike arrives at once: spawn as fast as the jump needs.
        rate = float(peak) if self.name == "spike" else self.spawn_rate
        return ShapeTick(users, rate)
