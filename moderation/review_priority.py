"""Review priority = severity x likelihood x reach. Pure code.

Reach grows with the views velocity (views per minute over the last minutes, from the counter
service's minute buckets) on a log scale, so a reel spreading 100x faster jumps well ahead
without one viral reel starving everything else: reach = 1 + log10(1 + views per minute).
"""

from __future__ import annotations

import math
from collections.abc import Sequence


def reach_of(views_per_minute: float) -> float:
    return 1.0 + math.log10(1.0 + max(0.0, views_per_minute))


def views_velocity(bucket_views: Sequence[int], minutes: int) -> float:
    """Views per minute over the last `minutes` minute buckets."""
    return sum(bucket_views) / max(1, minutes)


def priority(severity: float, likelihood: float, reach: float) -> float:
    return severity * likelihood * reach
