"""Per-event validation and the view rule, applied to a columnar batch before journaling.

Pure code: given a batch and the current time it says which events are accepted and, for
each other one, why not. A bad event never fails the rest of its batch.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt

from edge.errors import MalformedBatch
from edge.event_columns import EventColumns
from edge.view_deduper import ViewDeduper
from protos import common_pb2
from reelstream.request_limits import MAX_ID

INVALID_ARGUMENT = 3
NOT_FOUND = 5
FAILED_PRECONDITION = 9
KNOWN_KINDS = frozenset(
    (common_pb2.EVENT_KIND_VIEW, common_pb2.EVENT_KIND_LIKE, common_pb2.EVENT_KIND_UNLIKE)
)


@dataclass(frozen=True, slots=True)
class ReelInfo:
    """What validation needs to know about a reel (None in a lookup: unknown reel)."""

    removed: bool
    duration_ms: int
    age_restricted: bool = False
    """Media served only to age-verified viewers (events are counted as for any reel)."""


@dataclass(frozen=True)
class ValidationRules:
    view_threshold_ms: int
    max_watch_ms: int
    max_future_skew_ms: int
    max_event_age_ms: int
    max_batch_events: int


@dataclass
class ValidationResult:
    accepted: EventColumns
    rejections: list[common_pb2.EventRejection]


# Why an event is refused, in the order the checks apply: code, reason, message template.
_REFUSALS: dict[int, tuple[int, int, str]] = {
    1: (
        INVALID_ARGUMENT,
        common_pb2.REJECT_REASON_BAD_ID,
        "reel_id and user_id must be in [1, 2^63)",
    ),
    2: (INVALID_ARGUMENT, common_pb2.REJECT_REASON_BAD_KIND, "unknown event kind {kind}"),
    3: (NOT_FOUND, common_pb2.REJECT_REASON_UNKNOWN_REEL, "reel {reel} does not exist"),
    4: (FAILED_PRECONDITION, common_pb2.REJECT_REASON_REEL_REMOVED, "reel {reel} was removed"),
    5: (
        INVALID_ARGUMENT,
        common_pb2.REJECT_REASON_FUTURE_TIMESTAMP,
        "client_ts_ms is {ahead} ms in the future",
    ),
    6: (
        INVALID_ARGUMENT,
        common_pb2.REJECT_REASON_STALE_TIMESTAMP,
        "client_ts_ms is older than the accepted age",
    ),
    7: (
        INVALID_ARGUMENT,
        common_pb2.REJECT_REASON_ABSURD_WATCH_TIME,
        "watch_ms {watch} exceeds {max_watch}",
    ),
    8: (
        FAILED_PRECONDITION,
        common_pb2.REJECT_REASON_BELOW_VIEW_THRESHOLD,
        "watched {watch} ms; a view counts from {threshold} ms",
    ),
    9: (
        FAILED_PRECONDITION,
        common_pb2.REJECT_REASON_DUPLICATE_VIEW,
        "this viewer's view of this reel already counted in the window",
    ),
}
# Whether a kind is known, indexed by the kind clipped to [0, len - 1] (len - 1 is unknown).
_IS_KNOWN_KIND = np.zeros(max(KNOWN_KINDS) + 2, dtype=np.bool_)
_IS_KNOWN_KIND[sorted(KNOWN_KINDS)] = True


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


def _column(values: Sequence[int], count: int, dtype: type, default: int) -> npt.NDArray[Any]:
    if count and len(values):
        # upb's repeated fields export __array__: one C copy, not one Python int per value.
        column: npt.NDArray[Any] = np.asarray(values, dtype=dtype)
        return column
    return np.full(count, default, dtype=dtype)


def validate_batch(
    batch: common_pb2.EventBatch,
    rules: ValidationRules,
    deduper: ViewDeduper,
    now_ms: int,
    reels: Mapping[int, ReelInfo | None] | None = None,
) -> ValidationResult:
    """Splits a batch into the events to journal and the rejections.

    Checks run column-wise (numpy) in a fixed order and the first that fails is the reason
    reported, the view dedupe last. The accepted batch keeps reel_ids,
    user_ids, kinds and client_ts_ms (the columns counting needs); a missing client
    timestamp becomes the edge's clock. With `reels` (every valid reel id of the batch
    looked up), events of unknown or removed reels are refused and a view of a reel shorter
    than twice the threshold counts from half its duration.
    """
    count = check_shape(batch, rules.max_batch_events)
    reel = _column(batch.reel_ids, count, np.uint64, 0)
    user = _column(batch.user_ids, count, np.uint64, 0)
    kind = _column(batch.kinds, count, np.int64, 0)
    watch = _column(batch.watch_ms, count, np.int64, 0)
    stamp = _column(batch.client_ts_ms, count, np.int64, 0)
    stamp[stamp == 0] = now_ms
    refusal = np.zeros(count, dtype=np.int8)

    def refuse(mask: npt.NDArray[np.bool_], code: int) -> None:
        refusal[mask & (refusal == 0)] = code

    refuse((reel == 0) | (reel > MAX_ID) | (user == 0) | (user > MAX_ID), 1)
    refuse(~_IS_KNOWN_KIND[np.clip(kind, 0, len(_IS_KNOWN_KIND) - 1)], 2)
    threshold = np.full(count, rules.view_threshold_ms, dtype=np.int64)
    if reels is not None and count:
        distinct, where = np.unique(reel, return_inverse=True)
        infos = [reels.get(int(r)) for r in distinct]
        unknown = np.array([info is None for info in infos], dtype=np.bool_)
        removed = np.array([bool(info and info.removed) for info in infos], dtype=np.bool_)
        halves = np.array(
            [
                info.duration_ms // 2 if info and info.duration_ms else rules.view_threshold_ms
                for info in infos
            ],
            dtype=np.int64,
        )
        refuse(unknown[where], 3)
        refuse(removed[where], 4)
        threshold = np.minimum(threshold, halves[where])
    refuse(stamp > now_ms + rules.max_future_skew_ms, 5)
    refuse(stamp < now_ms - rules.max_event_age_ms, 6)
    is_view = kind == common_pb2.EVENT_KIND_VIEW
    refuse(is_view & (watch > rules.max_watch_ms), 7)
    refuse(is_view & (watch < threshold), 8)
    candidates = np.flatnonzero(is_view & (refusal == 0))
    first = deduper.first_in_window(user[candidates], reel[candidates], now_ms)
    refusal[candidates[~first]] = 9
    ok = refusal == 0
    accepted = EventColumns(reel[ok], user[ok], kind[ok], stamp[ok])
    rejections = []
    for index in np.flatnonzero(~ok).tolist():
        code, reason, template = _REFUSALS[int(refusal[index])]
        message = template.format(
            kind=int(kind[index]),
            reel=int(reel[index]),
            watch=int(watch[index]),
            ahead=int(stamp[index]) - now_ms,
            max_watch=rules.max_watch_ms,
            threshold=int(threshold[index]),
        )
        rejections.append(
            common_pb2.EventRejection(
                index=index,
                code=code,
                reason=reason,  # type: ignore[arg-type]
                message=message,
            )
        )
    return ValidationResult(accepted, rejections)
