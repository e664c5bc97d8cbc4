"""The inline spam screen: cheap per-event checks after validation, before journaling.

Refuses events of blocklisted users or IP hashes (pushed by the spam service through
WatchBlocklist) and events beyond per-user and per-IP token buckets (rate and burst per
key; an unknown IP, hash 0, is not limited). Refusals are reported like validation
rejections (FAILED_PRECONDITION, reason BLOCKLISTED or RATE_LIMITED) and counted by reason
in `edge_events_rejected_total`. Buckets are bounded (least recently used keys forgotten).
A screened view is forgotten by the view deduper, so a later legitimate view can count.
"""

from __future__ import annotations

from collections import OrderedDict
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from edge.event_columns import EventColumns
from edge.event_validation import FAILED_PRECONDITION, ValidationResult, ViewDeduper
from protos import common_pb2, spam_pb2

BoolArray = npt.NDArray[np.bool_]
IntpArray = npt.NDArray[np.intp]


@dataclass(frozen=True)
class ScreenLimits:
    user_events_per_s: float
    user_burst: float
    ip_events_per_s: float
    ip_burst: float
    max_keys: int


class TokenBuckets:
    """One token bucket per key, refilled at `rate_per_s` up to `burst`; bounded LRU."""

    def __init__(self, rate_per_s: float, burst: float, max_keys: int) -> None:
        self._rate_per_ms = rate_per_s / 1000.0
        self._burst = burst
        self._max_keys = max_keys
        self._buckets: OrderedDict[int, tuple[float, int]] = OrderedDict()

    def __len__(self) -> int:
        return len(self._buckets)

    def take(self, key: int, now_ms: int) -> bool:
        tokens, last_ms = self._buckets.get(key, (self._burst, now_ms))
        tokens = min(self._burst, tokens + (now_ms - last_ms) * self._rate_per_ms)
        allowed = tokens >= 1.0
        self._buckets[key] = (tokens - 1.0 if allowed else tokens, now_ms)
        self._buckets.move_to_end(key)
        if len(self._buckets) > self._max_keys:
            self._buckets.popitem(last=False)
        return allowed


@dataclass
class ScreenedBatch:
    result: ValidationResult
    accepted_index: IntpArray
    """Position in the client's batch of each accepted event (for forwarding)."""


def accepted_positions(count: int, validated: ValidationResult) -> IntpArray:
    """Positions in the client's batch of the events validation accepted, in order."""
    ok = np.ones(count, dtype=np.bool_)
    ok[[r.index for r in validated.rejections]] = False
    return np.flatnonzero(ok)


class SpamScreen:
    def __init__(self, limits: ScreenLimits) -> None:
        self._users = TokenBuckets(limits.user_events_per_s, limits.user_burst, limits.max_keys)
        self._ips = TokenBuckets(limits.ip_events_per_s, limits.ip_burst, limits.max_keys)
        self.blocked_users: frozenset[int] = frozenset()
        self.blocked_ips: frozenset[int] = frozenset()
        self.blocklist_version = 0

    def update_blocklist(self, blocklist: spam_pb2.Blocklist) -> None:
        self.blocked_users = frozenset(blocklist.user_ids)
        self.blocked_ips = frozenset(blocklist.ip_hashes)
        self.blocklist_version = blocklist.version

    def screen(
        self,
        batch: common_pb2.EventBatch,
        validated: ValidationResult,
        deduper: ViewDeduper,
        now_ms: int,
    ) -> ScreenedBatch:
        """Applies the screen to the events validation accepted."""
        accepted_index = accepted_positions(len(batch.reel_ids), validated)
        count = len(batch.reel_ids)
        if not len(accepted_index):
            return ScreenedBatch(validated, accepted_index)
        accepted = validated.accepted
        has_ips = len(batch.ip_hashes) == count
        users = accepted.user_ids.tolist()
        ips = [batch.ip_hashes[i] for i in accepted_index.tolist()] if has_ips else []
        keep = np.ones(len(accepted_index), dtype=np.bool_)
        rejections = list(validated.rejections)
        for position, user in enumerate(users):
            ip = ips[position] if has_ips else 0
            if user in self.blocked_users or (ip and ip in self.blocked_ips):
                reason, message = common_pb2.REJECT_REASON_BLOCKLISTED, "sender is blocklisted"
            elif not self._users.take(user, now_ms) or (ip and not self._ips.take(ip, now_ms)):
                reason, message = common_pb2.REJECT_REASON_RATE_LIMITED, "sender rate limited"
            else:
                continue
            keep[position] = False
            index = int(accepted_index[position])
            rejections.append(
                common_pb2.EventRejection(
                    index=index, code=FAILED_PRECONDITION, reason=reason, message=message
                )
            )
            if accepted.kinds[position] == common_pb2.EVENT_KIND_VIEW:
                deduper.forget(user, int(accepted.reel_ids[position]))
        if keep.all():
            return ScreenedBatch(validated, accepted_index)
        rejections.sort(key=lambda r: r.index)
        screened = EventColumns(
            accepted.reel_ids[keep],
            accepted.user_ids[keep],
            accepted.kinds[keep],
            accepted.ts_ms[keep],
        )
        return ScreenedBatch(ValidationResult(screened, rejections), accepted_index[keep])
