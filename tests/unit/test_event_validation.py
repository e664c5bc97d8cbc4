import pytest

from edge.errors import MalformedBatch
from edge.event_validation import ValidationRules, validate_batch
from edge.view_deduper import ViewDeduper
from protos import common_pb2

NOW = 1_800_000_000_000
RULES = ValidationRules(
    view_threshold_ms=3000,
    max_watch_ms=3_600_000,
    max_future_skew_ms=300_000,
    max_event_age_ms=86_400_000,
    max_batch_events=1000,
)


def batch(*events: tuple[int, int, int, int, int]) -> common_pb2.EventBatch:
    b = common_pb2.EventBatch()
    for reel_id, user_id, kind, watch_ms, ts in events:
        b.reel_ids.append(reel_id)
        b.user_ids.append(user_id)
        b.kinds.append(kind)  # type: ignore[arg-type]
        b.watch_ms.append(watch_ms)
        b.client_ts_ms.append(ts)
    return b


VIEW = common_pb2.EVENT_KIND_VIEW


def test_bad_events_are_rejected_one_by_one_and_the_rest_accepted() -> None:
    result = validate_batch(
        batch(
            (1, 1, VIEW, 5000, NOW),
            (0, 1, VIEW, 5000, NOW),
            (1, 2, 99, 5000, NOW),
            (1, 3, VIEW, 10**9, NOW),
            (1, 4, VIEW, 5000, NOW + 3_600_000),
            (1, 5, VIEW, 1000, NOW),
            (2, 6, common_pb2.EVENT_KIND_LIKE, 0, NOW),
        ),
        RULES,
        ViewDeduper(30_000, 100),
        NOW,
    )
    assert list(result.accepted.user_ids) == [1, 6]
    reasons = {r.index: common_pb2.RejectReason.Name(r.reason) for r in result.rejections}
    assert reasons == {
        1: "REJECT_REASON_BAD_ID",
        2: "REJECT_REASON_BAD_KIND",
        3: "REJECT_REASON_ABSURD_WATCH_TIME",
        4: "REJECT_REASON_FUTURE_TIMESTAMP",
        5: "REJECT_REASON_BELOW_VIEW_THRESHOLD",
    }
    assert all(r.code == 3 for r in result.rejections if r.index != 5)


def test_a_viewer_counts_one_view_per_reel_per_window() -> None:
    deduper = ViewDeduper(30_000, 100)
    first = validate_batch(
        batch((1, 1, VIEW, 5000, NOW), (1, 1, VIEW, 5000, NOW)), RULES, deduper, NOW
    )
    assert len(first.accepted.reel_ids) == 1
    later = validate_batch(batch((1, 1, VIEW, 5000, NOW)), RULES, deduper, NOW + 31_000)
    assert len(later.accepted.reel_ids) == 1


def test_columns_of_different_lengths_fail_the_whole_batch() -> None:
    b = batch((1, 1, VIEW, 5000, NOW))
    b.user_ids.append(2)
    with pytest.raises(MalformedBatch, match="same length"):
        validate_batch(b, RULES, ViewDeduper(0, 1), NOW)


def test_missing_timestamp_takes_the_edge_clock() -> None:
    b = common_pb2.EventBatch(reel_ids=[1], user_ids=[1], kinds=[VIEW], watch_ms=[4000])
    result = validate_batch(b, RULES, ViewDeduper(0, 1), NOW)
    assert result.accepted.ts_ms.tolist() == [NOW]


def test_unknown_and_removed_reels_are_refused_and_short_reels_count_from_half() -> None:
    from edge.event_validation import ReelInfo

    reels = {
        1: ReelInfo(removed=False, duration_ms=4_000),  # a 4 s reel: a view from 2 s
        2: ReelInfo(removed=True, duration_ms=30_000),
        3: None,
    }
    result = validate_batch(
        batch(
            (1, 1, VIEW, 2_100, NOW),
            (1, 2, VIEW, 1_900, NOW),
            (2, 3, VIEW, 5_000, NOW),
            (3, 4, VIEW, 5_000, NOW),
        ),
        RULES,
        ViewDeduper(30_000, 100),
        NOW,
        reels,
    )
    assert list(result.accepted.user_ids) == [1]
    reasons = {r.index: (r.code, common_pb2.RejectReason.Name(r.reason)) for r in result.rejections}
    assert reasons == {
        1: (9, "REJECT_REASON_BELOW_VIEW_THRESHOLD"),
        2: (9, "REJECT_REASON_REEL_REMOVED"),
        3: (5, "REJECT_REASON_UNKNOWN_REEL"),
    }
    assert "counts from 2000 ms" in result.rejections[0].message
