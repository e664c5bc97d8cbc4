"""Which edge a client talks to: the nearest one, measured, with the others as fallbacks.

Pure ordering; the measuring is the caller's (a health check per edge, a few times)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence


def by_latency(latencies_s: Mapping[str, Sequence[float | None]]) -> list[str]:
    """Edges ordered nearest first by their best probe; edges that never answered go last
    (in their given order), so a client still has somewhere to try when all seem down."""
    answered: list[tuple[float, int, str]] = []
    silent: list[str] = []
    for position, (edge, probes) in enumerate(latencies_s.items()):
        times = [probe for probe in probes if probe is not None]
        if times:
            answered.append((min(times), position, edge))
        else:
            silent.append(edge)
    return [edge for _, _, edge in sorted(answered)] + silent
