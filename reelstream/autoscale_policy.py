"""The autoscaling policy: how many replicas a tier should run, given its metrics (pure, no I/O).

This is the Kubernetes HorizontalPodAutoscaler algorithm, so that the local autoscaler
(`reelstream/autoscaler.py`) and the HPAs in `deploy/k8s/` behave alike. Sources, in
kubernetes/kubernetes `pkg/controller/podautoscaler/`:

- `replica_calculator.go` (`GetMetricReplicas` / `calcPlainMetricReplicas`): per metric,
  `usage_ratio = average per replica / target`; inside the tolerance band
  (`|1 - usage_ratio| <= tolerance`, kube-controller-manager's
  `--horizontal-pod-autoscaler-tolerance`, default 0.1) the replica count stays; otherwise
  `desired = ceil(usage_ratio x replicas)`. Replicas without a reading count as using 0 when
  scaling up and as exactly the target when scaling down (so a missing reading never makes a
  change bigger), and a change those assumptions would reverse is not made.
- `horizontal.go` (`computeReplicasForMetrics`): the proposal is the maximum over metrics; if a
  metric cannot be read and the others propose scaling down, nothing changes (never shrink
  on partial information); if none can be read, nothing changes.
- `horizontal.go` (`stabilizeRecommendationWithBehaviors`): every unstabilised proposal is
  recorded; the result is the current count raised to at least the *minimum* proposal of the
  scale-up window and lowered to at most the *maximum* proposal of the scale-down window. A
  scale-down therefore happens only once every proposal of the whole down window agreed,
  which is what stops flapping.
- `horizontal.go` (`convertDesiredReplicasWithBehaviorRate`,
  `calculateScaleUpLimitWithScalingRules`, `calculateScaleDownLimitWithScalingRules`):
  rate limits. Each policy allows, per `period_s`, adding (removing) `value` replicas or
  `value` percent of the count at the start of the period (scale-up percentages round up,
  scale-down ones truncate); `select` picks the policy allowing the biggest change (`max`,
  the default), the smallest (`min`), or forbids that direction (`disabled`). The result is
  finally clamped to [min_replicas, max_replicas]; a count already outside the bounds is
  brought back inside at once.

Defaults are the HPA's (`autoscaling/v2` behavior): scale up without stabilisation, by at most
max(100 %, 4 replicas) per 15 s; scale down after a 300 s window, by at most 100 % per 15 s.

Known differences from the HPA: readiness (unready pods, CPU initialisation period) is not
modelled (a replica either has a reading or not), and time is whatever clock the caller passes.
"""

from __future__ import annotations

import math
from collections import deque
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Literal

PolicyKind = Literal["pods", "percent"]
SelectPolicy = Literal["max", "min", "disabled"]

DEFAULT_TOLERANCE = 0.1


@dataclass(frozen=True)
class RatePolicy:
    """At most `value` replicas (`pods`) or `value` percent (`percent`) per `period_s`."""

    kind: PolicyKind
    value: int
    period_s: float

    def __post_init__(self) -> None:
        if self.value <= 0 or self.period_s <= 0:
            raise ValueError(f"rate policy needs a positive value and period: {self}")


@dataclass(frozen=True)
class ScalingRules:
    """One direction's behavior: its stabilisation window and rate policies."""

    stabilization_window_s: float
    policies: tuple[RatePolicy, ...]
    select: SelectPolicy = "max"

    def __post_init__(self) -> None:
        if self.stabilization_window_s < 0:
            raise ValueError("stabilization_window_s must be >= 0")
        if not self.policies and self.select != "disabled":
            raise ValueError("at least one rate policy is needed unless select is 'disabled'")

    @property
    def longest_period_s(self) -> float:
        return max((p.period_s for p in self.policies), default=0.0)


def default_scale_up() -> ScalingRules:
    """HPA default: no stabilisation; +100 % or +4 replicas per 15 s, whichever is more."""
    return ScalingRules(0.0, (RatePolicy("percent", 100, 15.0), RatePolicy("pods", 4, 15.0)))


def default_scale_down() -> ScalingRules:
    """HPA default: 300 s stabilisation; -100 % per 15 s."""
    return ScalingRules(300.0, (RatePolicy("percent", 100, 15.0),))


@dataclass(frozen=True)
class MetricTarget:
    """A metric whose per-replica average should stay near `average_per_replica`."""

    name: str
    average_per_replica: float

    def __post_init__(self) -> None:
        if not self.average_per_replica > 0:
            raise ValueError(f"{self.name}: target must be positive")


@dataclass(frozen=True)
class AutoscalePolicy:
    """Bounds, targets and behavior of one tier (the fields of an HPA spec)."""

    min_replicas: int
    max_replicas: int
    targets: tuple[MetricTarget, ...]
    tolerance: float = DEFAULT_TOLERANCE
    scale_up: ScalingRules = field(default_factory=default_scale_up)
    scale_down: ScalingRules = field(default_factory=default_scale_down)

    def __post_init__(self) -> None:
        if not 1 <= self.min_replicas <= self.max_replicas:
            raise ValueError("need 1 <= min_replicas <= max_replicas")
        if not 0 <= self.tolerance < 1:
            raise ValueError("tolerance must be in [0, 1)")
        if not self.targets:
            raise ValueError("at least one metric target is needed")


@dataclass(frozen=True)
class MetricReading:
    """One metric's values, one per replica that could be read; `missing` replicas could not."""

    name: str
    values: tuple[float, ...]
    missing: int = 0


@dataclass(frozen=True)
class MetricProposal:
    """What one metric alone asks for."""

    name: str
    usage_ratio: float
    replicas: int
    note: str


@dataclass(frozen=True)
class Decision:
    """The policy's answer for one evaluation."""

    current: int
    desired: int
    proposal: int
    """The metric-based proposal before stabilisation, rate limits and bounds."""
    reason: str
    metrics: tuple[MetricProposal, ...] = ()

    @property
    def action(self) -> str:
        if self.desired > self.current:
            return "scale-up"
        if self.desired < self.current:
            return "scale-down"
        return "hold"


def metric_proposal(
    target: MetricTarget, reading: MetricReading, current: int, tolerance: float
) -> MetricProposal:
    """The replica count one metric proposes (replica_calculator.go, calcPlainMetricReplicas).

    Raises:
        ValueError: the reading has no value at all.
    """
    if not reading.values:
        raise ValueError(f"{target.name}: no replica could be read")
    goal = target.average_per_replica
    present = len(reading.values)
    ratio = sum(reading.values) / (present * goal)
    if reading.missing == 0:
        if abs(1.0 - ratio) <= tolerance:
            return MetricProposal(target.name, ratio, current, "within tolerance")
        return MetricProposal(target.name, ratio, math.ceil(ratio * present), "")
    if abs(1.0 - ratio) <= tolerance:
        return MetricProposal(target.name, ratio, current, "within tolerance")
    # Missing replicas: assume they use the target when shrinking, nothing when growing.
    assumed = goal if ratio < 1.0 else 0.0
    total = present + reading.missing
    new_ratio = (sum(reading.values) + assumed * reading.missing) / (total * goal)
    if abs(1.0 - new_ratio) <= tolerance or (ratio < 1.0) != (new_ratio < 1.0):
        return MetricProposal(target.name, new_ratio, current, "missing readings cancel it")
    proposed = math.ceil(new_ratio * total)
    if (new_ratio < 1.0 and proposed > current) or (new_ratio > 1.0 and proposed < current):
        return MetricProposal(target.name, new_ratio, current, "missing readings reverse it")
    return MetricProposal(target.name, new_ratio, proposed, f"{reading.missing} unread")


@dataclass(frozen=True)
class _Recommendation:
    at_s: float
    replicas: int


@dataclass(frozen=True)
class _ScaleEvent:
    at_s: float
    change: int


class Autoscaler:
    """The HPA controller's memory for one tier: past proposals and past scale events.

    `decide` assumes its decision is carried out; if it is not, call `forget_last_scale` so
    the rate limits do not count a change that never happened.
    """

    def __init__(self, policy: AutoscalePolicy) -> None:
        self.policy = policy
        self._recommendations: deque[_Recommendation] = deque()
        self._up_events: deque[_ScaleEvent] = deque()
        self._down_events: deque[_ScaleEvent] = deque()
        self._last_event: tuple[deque[_ScaleEvent], _ScaleEvent] | None = None
        self._seeded = False

    def decide(self, now_s: float, current: int, readings: Mapping[str, MetricReading]) -> Decision:
        """The replica count to run now, with the reason."""
        policy = self.policy
        self._last_event = None
        if current == 0:
            # horizontal.go: a target scaled to zero by hand has autoscaling disabled.
            return Decision(0, 0, 0, "hold: scaling is disabled while the tier has 0 replicas")
        if not self._seeded:
            # horizontal.go seeds a new HPA's history with the current count, so a freshly
            # started controller waits a whole window before it scales anything down.
            self._recommendations.append(_Recommendation(now_s, current))
            self._seeded = True
        if current > policy.max_replicas:
            return self._record(
                now_s,
                current,
                policy.max_replicas,
                policy.max_replicas,
                f"{current} replicas is above max_replicas {policy.max_replicas}",
            )
        if current < policy.min_replicas:
            return self._record(
                now_s,
                current,
                policy.min_replicas,
                policy.min_replicas,
                f"{current} replicas is below min_replicas {policy.min_replicas}",
            )
        proposals: list[MetricProposal] = []
        unreadable: list[str] = []
        for target in policy.targets:
            reading = readings.get(target.name)
            if reading is None or not reading.values:
                unreadable.append(target.name)
                continue
            proposals.append(metric_proposal(target, reading, current, policy.tolerance))
        if not proposals:
            return Decision(
                current, current, current, f"hold: no metric readable ({', '.join(unreadable)})"
            )
        top = max(proposals, key=lambda p: p.replicas)
        if unreadable and top.replicas < current:
            return Decision(
                current,
                current,
                top.replicas,
                f"hold: {', '.join(unreadable)} unreadable, so no scale-down",
                tuple(proposals),
            )
        stabilized, why_stable = self._stabilize(now_s, current, top.replicas)
        desired, why_limited = self._limit_rate(now_s, current, stabilized)
        reason = _describe(current, top, why_stable, why_limited)
        return self._record(now_s, current, desired, top.replicas, reason, tuple(proposals))

    def forget_last_scale(self) -> None:
        """Un-records the scale event of the last decision (it was not carried out)."""
        if self._last_event is not None:
            events, event = self._last_event
            if event in events:
                events.remove(event)
            self._last_event = None

    def _record(
        self,
        now_s: float,
        current: int,
        desired: int,
        proposal: int,
        reason: str,
        metrics: tuple[MetricProposal, ...] = (),
    ) -> Decision:
        # Every carried-out change is a scale event for the rate limits, bounds corrections
        # included (horizontal.go storeScaleEvent runs on every rescale).
        if desired != current:
            event = _ScaleEvent(now_s, abs(desired - current))
            events = self._up_events if desired > current else self._down_events
            events.append(event)
            self._last_event = (events, event)
        return Decision(current, desired, proposal, reason, metrics)

    def _stabilize(self, now_s: float, current: int, proposal: int) -> tuple[int, str]:
        up_window = self.policy.scale_up.stabilization_window_s
        down_window = self.policy.scale_down.stabilization_window_s
        up_floor = proposal
        down_ceiling = proposal
        for rec in self._recommendations:
            if rec.at_s > now_s - up_window:
                up_floor = min(up_floor, rec.replicas)
            if rec.at_s > now_s - down_window:
                down_ceiling = max(down_ceiling, rec.replicas)
        keep_s = max(up_window, down_window)
        while self._recommendations and self._recommendations[0].at_s <= now_s - keep_s:
            self._recommendations.popleft()
        self._recommendations.append(_Recommendation(now_s, proposal))
        result = max(current, up_floor)
        result = min(result, down_ceiling)
        if result == proposal:
            return result, ""
        if result > proposal:
            return result, f"scale-down held by the {down_window:g} s window (max {down_ceiling})"
        return result, f"scale-up held by the {up_window:g} s window (min {up_floor})"

    def _limit_rate(self, now_s: float, current: int, desired: int) -> tuple[int, str]:
        policy = self.policy
        up_limit = _scale_up_limit(
            now_s, current, self._up_events, self._down_events, policy.scale_up
        )
        up_limit = max(up_limit, current)
        down_limit = _scale_down_limit(
            now_s, current, self._up_events, self._down_events, policy.scale_down
        )
        down_limit = min(down_limit, current)
        highest = min(policy.max_replicas, up_limit)
        lowest = max(policy.min_replicas, down_limit)
        if desired > highest:
            cause = (
                "scale-up rate limit"
                if highest == up_limit < policy.max_replicas
                else "max_replicas"
            )
            return highest, f"capped at {highest} by {cause}"
        if desired < lowest:
            cause = (
                "scale-down rate limit"
                if lowest == down_limit > policy.min_replicas
                else "min_replicas"
            )
            return lowest, f"floored at {lowest} by {cause}"
        return desired, ""


def _change_in_period(now_s: float, period_s: float, events: Sequence[_ScaleEvent]) -> int:
    return sum(e.change for e in events if e.at_s > now_s - period_s)


def _prune(now_s: float, events: deque[_ScaleEvent], keep_s: float) -> None:
    while events and events[0].at_s <= now_s - keep_s:
        events.popleft()


def _scale_up_limit(
    now_s: float,
    current: int,
    up_events: deque[_ScaleEvent],
    down_events: deque[_ScaleEvent],
    rules: ScalingRules,
) -> int:
    """calculateScaleUpLimitWithScalingRules: the most replicas the policies allow now."""
    if rules.select == "disabled":
        return current
    _prune(now_s, up_events, rules.longest_period_s)
    limits: list[int] = []
    for policy in rules.policies:
        added = _change_in_period(now_s, policy.period_s, up_events)
        removed = _change_in_period(now_s, policy.period_s, down_events)
        start = current - added + removed
        if policy.kind == "pods":
            limits.append(start + policy.value)
        else:
            limits.append(math.ceil(start * (1 + policy.value / 100)))
    return max(limits) if rules.select == "max" else min(limits)


def _scale_down_limit(
    now_s: float,
    current: int,
    up_events: deque[_ScaleEvent],
    down_events: deque[_ScaleEvent],
    rules: ScalingRules,
) -> int:
    """calculateScaleDownLimitWithScalingRules: the fewest replicas the policies allow now."""
    if rules.select == "disabled":
        return current
    _prune(now_s, down_events, rules.longest_period_s)
    limits: list[int] = []
    for policy in rules.policies:
        added = _change_in_period(now_s, policy.period_s, up_events)
        removed = _change_in_period(now_s, policy.period_s, down_events)
        start = current - added + removed
        if policy.kind == "pods":
            limits.append(start - policy.value)
        else:
            limits.append(int(start * (1 - policy.value / 100)))
    # "max" selects the policy allowing the biggest change: the lowest count.
    return min(limits) if rules.select == "max" else max(limits)


def _describe(current: int, top: MetricProposal, why_stable: str, why_limited: str) -> str:
    basis = f"{top.name} at {top.usage_ratio:.2f}x target proposes {top.replicas}" + (
        f" ({top.note})" if top.note else ""
    )
    details = "; ".join(part for part in (why_stable, why_limited) if part)
    return f"{basis}; {details}" if details else basis
