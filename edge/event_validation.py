"""Per-event validation and the view rule, applied to a columnar batch before journaling.

Pure code: given a batch and the current time it says which events are accepted and, for
each other one, why not. A bad event never fails the rest of its batch.
"""

from __future__ import annotations

from collections import OrderedDict
from dataclasses import dataclass

from edge.errors import MalformedBatch
from protos import common_pb2

INVALID_ARGUMENT = 3
FAILED_PRECONDITION = 9
MAX_ID = 2**63 - 1
KNOWN_KINDS = frozenset(
    (common_pb2.EVENT_KIND_VIEW, common_pb2.EVENT_KIND_LIKE, common_pb2.EVENT_KIND_UNLIKE)
)


@dataclass(frozen=True)
class ValidationRules:
    view_threshold_ms: int
    max_watch_ms: int
    max_future_skew_ms: int
    max_event_age_ms: int
    max_batch_events: int


class ViewDeduper:
    """Remembers (viewer, reel) pairs for a window so repeated views count once.

    Bounded: beyond `max_entries` the oldest pairs are forgotten (they may count again).
    """

    def __init__(self, window_ms: int, max_entries: int) -> None:
        self._window_ms = window_ms
        self._max_entries = max_entries
        self._seen: OrderedDict[tuple[int, int], int] = OrderedDict()

    def __len__(self) -> int:
        return len(self._seen)

    def first_in_window(self, user_id: int, reel_id: int, now_ms: int) -> bool:
        if self._window_ms <= 0:
            return True
        key = (user_id, reel_id)
        expires = self._seen.get(key)
        if expires is not None and expires > now_ms:
            return False
        self._seen[key] = now_ms + self._window_ms
        self._seen.move_to_end(key)
        while len(self._seen) > self._max_entries:
            self._seen.popitem(last=False)
        return True

    def forget(self, user_id: int, reel_id: int) -> None:
        """Undoes a `first_in_window` whose event was finally not journaled."""
        self._seen.pop((user_id, reel_id), None)


@dataclass
class ValidationResult:
    accepted: common_pb2.EventBatch
    rejections: list[common_pb2.EventRejection]


def _reject(
    rejections: list[common_pb2.EventRejection],
    index: int,
    code: int,
    reason: int,
    message: str,
) -> None:
    rejections.append(
        common_pb2.EventRejection(index=index, code=code, reason=reason, message=message)  # type: ignore[arg-type]
    )


def check_shape(batch: common_pb2.EventBatch, max_events: int) -> int:
    """Returns the batch's event count; raises MalformedBatch when columns disagree."""
    count = len(batch.reel_ids)
    if count > max_events:
        raise MalformedBatch(f"{count} events in one batch; the limit is {max_events}")
    if len(batch.user_ids) != count or len(batch.kinds) != count:
        raise MalformedBatch(
            f"reel_ids, user_ids and kinds must have the same length"
            f" (got {count}, {len(batch.user_ids)}, {len(batch.kinds)})"
        )
    for name in ("watch_ms", "client_ts_ms", "devices", "ip_hashes"):
        length = len(getattr(batch, name))
        if length not in (0, count):
            raise MalformedBatch(f"{name} has {length} entries for {count} events")
    if len(batch.countries) not in (0, 2 * count):
        raise MalformedBatch(f"countries must hold 2 bytes per event ({2 * count})")
    return count


def validate_batch(
    batch: common_pb2.EventBatch, rules: ValidationRules, deduper: ViewDeduper, now_ms: int
) -> ValidationResult:
    """Splits a batch into the events to journal and the rejections.

    The accepted batch keeps reel_ids, user_ids, kinds and client_ts_ms (the columns that
    counting needs); a missing client timestamp becomes the edge's clock.
    """
    count = check_shape(batch, rules.max_batch_events)
    watch = batch.watch_ms if len(batch.watch_ms) else None
    stamps = batch.client_ts_ms if len(batch.client_ts_ms) else None
    accepted = common_pb2.EventBatch()
    rejections: list[common_pb2.EventRejection] = []
    out_reels, out_users, out_kinds, out_ts = [], [], [], []
    oldest = now_ms - rules.max_event_age_ms
    newest = now_ms + rules.max_future_skew_ms
    for index in range(count):
        reel_id = batch.reel_ids[index]
        user_id = batch.user_ids[index]
        kind = batch.kinds[index]
        if not 0 < reel_id <= MAX_ID or not 0 < user_id <= MAX_ID:
            _reject(
                rejections,
                index,
                INVALID_ARGUMENT,
                common_pb2.REJECT_REASON_BAD_ID,
                "reel_id and user_id must be in [1, 2^63)",
            )
            continue
        if kind not in KNOWN_KINDS:
            _reject(
                rejections,
                index,
                INVALID_ARGUMENT,
                common_pb2.REJECT_REASON_BAD_KIND,
                f"unknown event kind {kind}",
            )
            continue
        ts = stamps[index] if stamps is not None and stamps[index] else now_ms
        if ts > newest:
            _reject(
                rejections,
                index,
                INVALID_ARGUMENT,
                common_pb2.REJECT_REASON_FUTURE_TIMESTAMP,
                f"client_ts_ms is {ts - now_ms} ms in the future",
            )
            continue
        if ts < oldest:
            _reject(
                rejections,
                index,
                INVALID_ARGUMENT,
                common_pb2.REJECT_REASON_STALE_TIMESTAMP,
                "client_ts_ms is older than the accepted age",
            )
            continue
        if kind == common_pb2.EVENT_KIND_VIEW:
            watched = watch[index] if watch is not None else 0
            if watched > rules.max_watch_ms:
                _reject(
                    rejections,
                    index,
                    INVALID_ARGUMENT,
                    common_pb2.REJECT_REASON_ABSURD_WATCH_TIME,
                    f"watch_ms {watched} exceeds {rules.max_watch_ms}",
                )
                continue
            if watched < rules.view_threshold_ms:
                _reject(
                    rejections,
                    index,
                    FAILED_PRECONDITION,
                    common_pb2.REJECT_REASON_BELOW_VIEW_THRESHOLD,
                    f"watched {watched} ms; a view counts from {rules.view_threshold_ms} ms",
                )
                continue
            if not deduper.first_in_window(user_id, reel_id, now_ms):
                _reject(
                    rejections,
                    index,
                    FAILED_PRECONDITION,
                    common_pb2.REJECT_REASON_DUPLICATE_VIEW,
                    "this viewer's view of this reel already counted in the window",
                )
                continue
        out_reels.append(reel_id)
        out_users.append(user_id)
        out_kinds.append(kind)
        out_ts.append(ts)
    accepted.reel_ids.extend(out_reels)
    accepted.user_ids.extend(out_users)
    accepted.kinds.extend(out_kinds)
    accepted.client_ts_ms.extend(out_ts)
    return ValidationResult(accepted, rejections)
