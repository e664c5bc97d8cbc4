"""Verdicts, their reversal, the edge's token buckets and forwarded batch merging."""

from __future__ import annotations

import numpy as np
import pytest

from edge.spam_forwarder import forwarded_events
from edge.spam_screen import TokenBuckets
from protos import common_pb2
from spam.errors import AlreadyReversed
from spam.event_frame import LIKE, VIEW, EventFrame
from spam.history import EventHistory
from spam.verdicts import VerdictBook


def frame(reels: list[int], users: list[int], kinds: list[int]) -> EventFrame:
    count = len(reels)
    zeros = np.zeros(count, np.int64)
    return EventFrame(
        np.array(reels, np.uint64),
        np.array(users, np.uint64),
        np.array(kinds, np.int64),
        zeros,
        zeros,
        np.zeros(count, np.uint16),
        zeros,
        np.zeros(count, np.uint64),
    )


def test_a_verdict_removes_each_view_once_and_each_like_once_per_user() -> None:
    book = VerdictBook("t")
    events = frame([1, 1, 2, 2, 2], [7, 8, 7, 7, 9], [VIEW, VIEW, LIKE, LIKE, VIEW])
    flagged = np.array([True, True, True, True, False])
    verdict = book.draft(events, flagged, "test", 0)
    assert verdict is not None
    assert (verdict.reel_ids, verdict.view_deltas, verdict.like_deltas) == (
        [1, 2],
        [-2, 0],
        [0, -1],
    )
    assert verdict.correction().batch_id == "spam:t-1"
    # The same like pair is never removed twice.
    assert book.draft(events, np.array([False, False, True, False, False]), "x", 0) is None
    assert book.report(2) == (0, 1, ["t-1"])


def test_reversal_restores_exactly_and_only_once() -> None:
    book = VerdictBook("t")
    verdict = book.draft(frame([3], [1], [VIEW]), np.array([True]), "test", 0)
    assert verdict is not None
    reversal = book.reverse(verdict.verdict_id).reversal()
    assert list(reversal.view_deltas) == [1]
    assert reversal.batch_id == "spam-reversal:t-1"
    assert book.report(3) == (0, 0, ["t-1"])
    with pytest.raises(AlreadyReversed):
        book.reverse(verdict.verdict_id)


def test_token_bucket_allows_the_burst_then_the_rate() -> None:
    buckets = TokenBuckets(rate_per_s=1.0, burst=3, max_keys=10)
    assert [buckets.take(1, 0) for _ in range(4)] == [True, True, True, False]
    assert buckets.take(1, 1_000)
    assert not buckets.take(1, 1_000)
    assert buckets.take(2, 1_000)


def test_forwarded_events_keep_the_accepted_ones_with_their_columns_aligned() -> None:
    a = common_pb2.EventBatch(reel_ids=[1], user_ids=[2], kinds=[1], countries=b"DE")
    b = common_pb2.EventBatch(
        reel_ids=[3, 4, 5],
        user_ids=[5, 6, 7],
        kinds=[1, 2, 1],
        watch_ms=[9, 0, 8],
        ip_hashes=[2**64 - 1, 11, 12],
        countries=b"USFRGB",
    )
    merged = forwarded_events([(a, np.arange(1)), (b, np.array([0, 2]))])
    assert list(merged.reel_ids) == [1, 3, 5]
    assert list(merged.user_ids) == [2, 5, 7]
    assert list(merged.kinds) == [1, 1, 1]
    assert list(merged.watch_ms) == [0, 9, 8]
    assert list(merged.ip_hashes) == [0, 2**64 - 1, 12]
    assert list(merged.devices) == []
    assert merged.countries == b"DEUSGB"
    only_b = forwarded_events([(b, np.arange(3))])
    assert list(only_b.reel_ids) == [3, 4, 5]
    assert only_b.countries == b"USFRGB"


def test_restored_verdicts_keep_their_removed_like_pairs_and_can_be_reversed_once() -> None:
    first_run = VerdictBook("run1")
    events = frame([1, 2], [7, 7], [LIKE, VIEW])
    verdict = first_run.draft(events, np.array([True, True]), "test", 0)
    assert verdict is not None
    restarted = VerdictBook("run2")
    restarted.restore([verdict])
    # The like pair was removed by the earlier run: it is not removed again.
    assert restarted.draft(events, np.array([True, False]), "again", 1) is None
    assert restarted.report(1) == (0, 1, [verdict.verdict_id])
    restarted.reverse(verdict.verdict_id)
    with pytest.raises(AlreadyReversed):
        restarted.reverse(verdict.verdict_id)
    # A reversed verdict restored after another restart stays reversed.
    again = VerdictBook("run3")
    again.restore([verdict])
    assert again.report(1) == (0, 0, [verdict.verdict_id])


def test_history_tells_which_events_have_settled_and_trims_arrivals_with_events() -> None:
    history = EventHistory(history_ms=3_600_000, max_events=3)
    history.add(frame([1, 2], [7, 7], [VIEW, VIEW]), np.zeros(2, np.int64), arrived_ms=1_000)
    history.add(frame([3], [8], [VIEW]), np.zeros(1, np.int64), arrived_ms=20_000)
    assert history.settled(now_ms=30_000, settle_ms=15_000).tolist() == [True, True, False]
    assert history.settled(now_ms=35_000, settle_ms=15_000).tolist() == [True, True, True]
    # The count bound drops the oldest event, and its arrival time with it.
    history.add(frame([4], [9], [VIEW]), np.zeros(1, np.int64), arrived_ms=40_000)
    assert history.events.reel_ids.tolist() == [2, 3, 4]
    assert history.arrived_ms.tolist() == [1_000, 20_000, 40_000]


def test_set_threshold_reaches_the_target_precision_and_reports_what_it_gives() -> None:
    import numpy as np

    from spam.model import SpamModel
    from spam.training import set_threshold

    rng = np.random.default_rng(3)
    labels = rng.random(2_000) < 0.2
    features = rng.normal(size=(2_000, 3)) + labels[:, None] * 2.5
    model = SpamModel.fit("test", features, labels)
    figures = set_threshold(model, features, labels, 0.99)
    flagged = model.margins(features) >= model.threshold
    precision = (flagged & labels).sum() / flagged.sum()
    assert precision >= 0.99
    assert figures["precision"] == round(float(precision), 5)
    assert figures["recall"] == round(float((flagged & labels).sum() / labels.sum()), 5)
    assert 0 <= figures["false_positive_rate"] < 0.01
