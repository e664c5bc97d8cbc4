"""The inline spam screen: cheap checks after validation, before journaling, per batch.

Refuses events of blocklisted users or IP hashes (pushed by the spam service through
WatchBlocklist) and events beyond per-user and per-IP token buckets (rate and burst per
key; an unknown IP, hash 0, is not limited). Refusals are reported like validation
rejections (FAILED_PRECONDITION, reason BLOCKLISTED or RATE_LIMITED) and counted by reason
in `edge_events_rejected_total`. Buckets are bounded (least recently used keys forgotten).
A screened view is forgotten by the view deduper, so a later legitimate view can count.

The checks run on the batch's columns (numpy; edge/token_buckets.py charges the buckets a
batch at a time) with the answers of screening one event at a time, in order: a
blocklisted event takes no token; otherwise it takes one from its user's bucket and, only
if that was allowed and it has an IP hash, one from its IP's bucket (a refusal there
leaves the user's token spent).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from edge.event_columns import EventColumns
from edge.event_validation import FAILED_PRECONDITION, ValidationResult
from edge.token_buckets import TokenBuckets
from edge.view_deduper import ViewDeduper
from protos import common_pb2, spam_pb2

__all__ = ["ScreenLimits", "ScreenedBatch", "SpamScreen", "TokenBuckets", "accepted_positions"]

BoolArray = npt.NDArray[np.bool_]
IntpArray = npt.NDArray[np.intp]


@dataclass(frozen=True)
class ScreenLimits:
    user_events_per_s: float
    user_burst: float
    ip_events_per_s: float
    ip_burst: float
    max_keys: int


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


_NO_KEYS = np.zeros(0, dtype=np.uint64)


class SpamScreen:
    def __init__(self, limits: ScreenLimits) -> None:
        self._users = TokenBuckets(limits.user_events_per_s, limits.user_burst, limits.max_keys)
        self._ips = TokenBuckets(limits.ip_events_per_s, limits.ip_burst, limits.max_keys)
        self.blocked_users: frozenset[int] = frozenset()
        self.blocked_ips: frozenset[int] = frozenset()
        self._blocked_user_ids = _NO_KEYS
        self._blocked_ip_hashes = _NO_KEYS
        self.blocklist_version = 0

    def update_blocklist(self, blocklist: spam_pb2.Blocklist) -> None:
        self.blocked_users = frozenset(blocklist.user_ids)
        self.blocked_ips = frozenset(blocklist.ip_hashes)
        self._blocked_user_ids = np.array(sorted(self.blocked_users), dtype=np.uint64)
        self._blocked_ip_hashes = np.array(sorted(self.blocked_ips), dtype=np.uint64)
        self.blocklist_version = blocklist.version

    def screen(
        self,
        batch: common_pb2.EventBatch,
        validated: ValidationResult,
        deduper: ViewDeduper,
        now_ms: int,
    ) -> ScreenedBatch:
        """Applies the screen to the events validation accepted."""
        count = len(batch.reel_ids)
        accepted_index = accepted_positions(count, validated)
        if not len(accepted_index):
            return ScreenedBatch(validated, accepted_index)
        accepted = validated.accepted
        users = accepted.user_ids
        if len(batch.ip_hashes) == count:
            ips = np.asarray(batch.ip_hashes, dtype=np.uint64)[accepted_index]
        else:
            ips = np.zeros(len(accepted_index), dtype=np.uint64)
        blocked = np.zeros(len(accepted_index), dtype=np.bool_)
        if len(self._blocked_user_ids):
            blocked |= np.isin(users, self._blocked_user_ids)
        if len(self._blocked_ip_hashes):
            blocked |= (ips != 0) & np.isin(ips, self._blocked_ip_hashes)
        limited = ~blocked
        charged = np.flatnonzero(limited)
        user_ok = self._users.take_batch(users[charged], now_ms)
        limited[charged[user_ok]] = False
        with_ip = charged[user_ok]
        with_ip = with_ip[ips[with_ip] != 0]
        ip_ok = self._ips.take_batch(ips[with_ip], now_ms)
        limited[with_ip[~ip_ok]] = True
        keep = ~(blocked | limited)
        if keep.all():
            return ScreenedBatch(validated, accepted_index)
        rejections = list(validated.rejections)
        for position in np.flatnonzero(~keep).tolist():
            if blocked[position]:
                reason, message = common_pb2.REJECT_REASON_BLOCKLISTED, "sender is blocklisted"
            else:
                reason, message = common_pb2.REJECT_REASON_RATE_LIMITED, "sender rate limited"
            rejections.append(
                common_pb2.EventRejection(
                    index=int(accepted_index[position]),
                    code=FAILED_PRECONDITION,
                    reason=reason,
                    message=message,
                )
            )
        dropped_views = ~keep & (accepted.kinds == common_pb2.EVENT_KIND_VIEW)
        deduper.forget(users[dropped_views], accepted.reel_ids[dropped_views])
        rejections.sort(key=lambda r: r.index)
        screened = EventColumns(
            accepted.reel_ids[keep],
            accepted.user_ids[keep],
            accepted.kinds[keep],
            accepted.ts_ms[keep],
        )
        return ScreenedBatch(ValidationResult(screened, rejections), accepted_index[keep])
