"""Rung choice of the player model, as dash.js's default `abrDynamic` strategy makes it.

Pure code, no I/O. Three parts:

- `ThroughputEstimator`: two exponentially weighted moving averages of the measured segment
  throughput (half-lives 3 s and 9 s of downloaded media, as hls.js), the estimate being the
  lower one: it falls fast when the network degrades and rises slowly when it recovers.
- `ThroughputRule`: the highest rung whose bitrate fits `safety_factor` (0.9) x the estimate.
  Used at start-up and whenever the buffer is low.
- `BolaRule`: BOLA (Spiteri et al., INFOCOM 2016) with dash.js's parameters: utility
  ln(bitrate) shifted so the lowest rung has utility 1, a buffer target of
  max(stable buffer, 10 s + 2 s per rung), and BOLA-O's cap: BOLA never switches up past what
  the throughput allows (which is what keeps it from oscillating). It also says how long to
  wait before the next request when the buffer is above the level the chosen rung needs.

`DynamicAbr` switches to BOLA once the buffer exceeds the stable buffer time (12 s) and back
to the throughput rule when it falls under half of it, like dash.js's abrDynamic.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

MINIMUM_BUFFER_S = 10.0
MINIMUM_BUFFER_PER_RUNG_S = 2.0


@dataclass(frozen=True)
class AbrParameters:
    """Knobs of the rung choice; the defaults are dash.js's and hls.js's."""

    initial_estimate_bps: float = 500_000.0
    """Throughput assumed before the first segment is measured (hls.js default)."""
    fast_half_life_s: float = 3.0
    """Half-life of the fast throughput average, in seconds of downloaded media."""
    slow_half_life_s: float = 9.0
    """Half-life of the slow throughput average."""
    safety_factor: float = 0.9
    """Share of the estimated throughput the throughput rule may spend."""
    stable_buffer_s: float = 12.0
    """Buffer above which BOLA takes over (and half of which gives control back)."""


class ThroughputEstimator:
    """Two EWMAs of segment throughput, weighted by segment duration; the estimate is the
    lower one (both start at the initial estimate)."""

    def __init__(self, parameters: AbrParameters) -> None:
        self._parameters = parameters
        self._fast = _Ewma(parameters.fast_half_life_s)
        self._slow = _Ewma(parameters.slow_half_life_s)

    def add_sample(self, media_duration_s: float, size_bytes: int, download_s: float) -> None:
        """Records one downloaded segment (`download_s` is clamped to 1 ms)."""
        throughput_bps = size_bytes * 8 / max(download_s, 0.001)
        self._fast.add(media_duration_s, throughput_bps)
        self._slow.add(media_duration_s, throughput_bps)

    @property
    def estimate_bps(self) -> float:
        if not self._fast.weight:
            return self._parameters.initial_estimate_bps
        return min(self._fast.value, self._slow.value)


class _Ewma:
    def __init__(self, half_life_s: float) -> None:
        self._alpha = math.exp(math.log(0.5) / half_life_s)
        self._estimate = 0.0
        self.weight = 0.0

    def add(self, weight: float, value: float) -> None:
        adjusted_alpha = self._alpha**weight
        self._estimate = value * (1 - adjusted_alpha) + adjusted_alpha * self._estimate
        self.weight += weight

    @property
    def value(self) -> float:
        # Bias correction: without it the zero start drags early estimates down.
        zero_factor = 1 - self._alpha**self.weight
        return self._estimate / zero_factor if zero_factor else self._estimate


def highest_rung_within(bitrates_bps: Sequence[float], budget_bps: float) -> int:
    """Index of the highest rung (ascending bitrates) not above `budget_bps`; 0 if none."""
    choice = 0
    for index, bitrate in enumerate(bitrates_bps):
        if bitrate <= budget_bps:
            choice = index
    return choice


class ThroughputRule:
    """The highest rung that fits in `safety_factor` x the throughput estimate."""

    def __init__(self, bitrates_bps: Sequence[float], parameters: AbrParameters) -> None:
        self._bitrates = list(bitrates_bps)
        self._safety = parameters.safety_factor

    def choose(self, estimate_bps: float) -> int:
        return highest_rung_within(self._bitrates, self._safety * estimate_bps)


class BolaRule:
    """BOLA-O over a ladder of ascending bitrates."""

    def __init__(self, bitrates_bps: Sequence[float], parameters: AbrParameters) -> None:
        if not bitrates_bps:
            raise ValueError("a ladder needs at least one rung")
        self._bitrates = list(bitrates_bps)
        log_lowest = math.log(self._bitrates[0])
        self._utilities = [math.log(b) - log_lowest + 1.0 for b in self._bitrates]
        buffer_target_s = max(
            parameters.stable_buffer_s,
            MINIMUM_BUFFER_S + MINIMUM_BUFFER_PER_RUNG_S * len(self._bitrates),
        )
        highest_utility = self._utilities[-1]
        if len(self._bitrates) == 1:
            self._gp = 1.0
        else:
            self._gp = (highest_utility - 1.0) / (buffer_target_s / MINIMUM_BUFFER_S - 1.0)
        self._vp = MINIMUM_BUFFER_S / self._gp

    def min_buffer_s(self, rung: int) -> float:
        """Lowest buffer level at which plain BOLA prefers `rung` to every lower rung."""
        level = 0.0
        for lower in range(rung):
            if self._utilities[lower] < self._utilities[rung]:
                b_q, u_q = self._bitrates[rung], self._utilities[rung]
                b_i, u_i = self._bitrates[lower], self._utilities[lower]
                level = max(level, self._vp * (self._gp + (b_q * u_i - b_i * u_q) / (b_q - b_i)))
        return level

    def choose_by_buffer(self, buffer_s: float) -> int:
        """Plain BOLA: the rung maximising (Vp (utility + gp) - buffer) / bitrate."""
        scores = [
            (self._vp * (utility + self._gp) - buffer_s) / bitrate
            for utility, bitrate in zip(self._utilities, self._bitrates, strict=True)
        ]
        return max(range(len(scores)), key=scores.__getitem__)

    def choose(self, buffer_s: float, last_rung: int, estimate_bps: float) -> int:
        """BOLA-O: a switch up is capped by the (unsafetied) throughput, never below the
        last rung, so a steady network does not make BOLA climb and fall back."""
        rung = self.choose_by_buffer(buffer_s)
        if rung > last_rung:
            rung_for_throughput = highest_rung_within(self._bitrates, estimate_bps)
            if rung > rung_for_throughput:
                rung = max(rung_for_throughput, last_rung)
        return rung

    def max_buffer_s(self, rung: int) -> float:
        """Buffer level above which BOLA would rather wait than fetch `rung`."""
        return self._vp * (self._utilities[rung] + self._gp)

    def delay_s(self, buffer_s: float, rung: int) -> float:
        """How long to wait before requesting `rung` so the buffer does not overshoot."""
        return max(0.0, buffer_s - self.max_buffer_s(rung))


@dataclass(frozen=True)
class RungDecision:
    """The next segment's rung and how long to wait before requesting it."""

    rung: int
    delay_s: float
    rule: str


class DynamicAbr:
    """dash.js abrDynamic: the throughput rule while the buffer is low, BOLA while high.

    On hand-over BOLA gets dash.js's placeholder buffer: virtual seconds added to the real
    buffer so that BOLA's first choice is the rung the throughput rule was playing (without
    it BOLA dips a rung at a steady rate). Delays are paid from the placeholder first.
    """

    def __init__(
        self, bitrates_bps: Sequence[float], parameters: AbrParameters | None = None
    ) -> None:
        self.parameters = parameters or AbrParameters()
        self.estimator = ThroughputEstimator(self.parameters)
        self._throughput = ThroughputRule(bitrates_bps, self.parameters)
        self._bola = BolaRule(bitrates_bps, self.parameters)
        self._using_bola = False
        self._placeholder_s = 0.0

    @property
    def using_bola(self) -> bool:
        return self._using_bola

    def decide(self, buffer_s: float, last_rung: int | None) -> RungDecision:
        stable = self.parameters.stable_buffer_s
        threshold = stable / 2 if self._using_bola else stable
        was_using_bola = self._using_bola
        self._using_bola = buffer_s > threshold and last_rung is not None
        estimate = self.estimator.estimate_bps
        if not self._using_bola or last_rung is None:
            self._placeholder_s = 0.0
            return RungDecision(self._throughput.choose(estimate), 0.0, "throughput")
        if not was_using_bola:
            # A hair above the boundary: at it exactly, BOLA's scores tie and the lower wins.
            boundary_s = self._bola.min_buffer_s(last_rung) + 0.01
            self._placeholder_s = max(0.0, boundary_s - buffer_s)
        rung = self._bola.choose(buffer_s + self._placeholder_s, last_rung, estimate)
        delay_s = self._bola.delay_s(buffer_s + self._placeholder_s, rung)
        paid_s = min(delay_s, self._placeholder_s)
        self._placeholder_s -= paid_s
        return RungDecision(rung, delay_s - paid_s, "bola")
