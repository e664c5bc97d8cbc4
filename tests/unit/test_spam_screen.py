"""The batch-wise spam screen answers exactly like screening one event at a time."""

from __future__ import annotations

from collections import OrderedDict

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from edge.event_columns import U64, EventColumns
from edge.event_validation import FAILED_PRECONDITION, ValidationResult
from edge.spam_screen import ScreenLimits, SpamScreen, TokenBuckets
from edge.view_deduper import ViewDeduper
from protos import common_pb2, spam_pb2

VIEW, LIKE = common_pb2.EVENT_KIND_VIEW, common_pb2.EVENT_KIND_LIKE


class ReferenceBuckets:
    """The per-event token buckets the screen had before it worked on whole batches."""

    def __init__(self, rate_per_s: float, burst: float, max_keys: int) -> None:
        self._rate_per_ms = rate_per_s / 1000.0
        self._burst = burst
        self._max_keys = max_keys
        self._buckets: OrderedDict[int, tuple[float, int]] = OrderedDict()

    def take(self, key: int, now_ms: int) -> bool:
        tokens, last_ms = self._buckets.get(key, (self._burst, now_ms))
        tokens = min(self._burst, tokens + (now_ms - last_ms) * self._rate_per_ms)
        allowed = tokens >= 1.0
        self._buckets[key] = (tokens - 1.0 if allowed else tokens, now_ms)
        self._buckets.move_to_end(key)
        if len(self._buckets) > self._max_keys:
            self._buckets.popitem(last=False)
        return allowed


class ReferenceScreen:
    """One event at a time, in order: blocklist, user bucket, then IP bucket."""

    def __init__(self, limits: ScreenLimits, blocked_users: set[int], blocked_ips: set[int]):
        self.users = ReferenceBuckets(limits.user_events_per_s, limits.user_burst, limits.max_keys)
        self.ips = ReferenceBuckets(limits.ip_events_per_s, limits.ip_burst, limits.max_keys)
        self.blocked_users, self.blocked_ips = blocked_users, blocked_ips

    def decide(self, users: list[int], ips: list[int], now_ms: int) -> list[int]:
        """The reject reason of each event (0: accepted)."""
        reasons: list[int] = []
        for user, ip in zip(users, ips, strict=True):
            if user in self.blocked_users or (ip and ip in self.blocked_ips):
                reasons.append(common_pb2.REJECT_REASON_BLOCKLISTED)
            elif not self.users.take(user, now_ms) or (ip and not self.ips.take(ip, now_ms)):
                reasons.append(common_pb2.REJECT_REASON_RATE_LIMITED)
            else:
                reasons.append(0)
        return reasons


class RecordingDeduper(ViewDeduper):
    def __init__(self) -> None:
        super().__init__(30_000, 1_000)
        self.forgotten: list[tuple[int, int]] = []

    def forget(self, user_ids: U64, reel_ids: U64) -> None:
        self.forgotten.extend(zip(user_ids.tolist(), reel_ids.tolist(), strict=True))


def batch_of(users: list[int], ips: list[int], kinds: list[int]) -> common_pb2.EventBatch:
    count = len(users)
    return common_pb2.EventBatch(
        reel_ids=[100 + i for i in range(count)],
        user_ids=users,
        kinds=kinds,  # type: ignore[arg-type]
        client_ts_ms=[1] * count,
        ip_hashes=ips,
    )


def validated_all(batch: common_pb2.EventBatch) -> ValidationResult:
    return ValidationResult(EventColumns.from_batch(batch), [])


events = st.tuples(st.integers(1, 12), st.integers(0, 5), st.sampled_from([VIEW, LIKE]))
batches = st.tuples(st.integers(0, 3_000), st.lists(events, max_size=40))
limits = st.builds(
    ScreenLimits,
    user_events_per_s=st.sampled_from([0.5, 1.0, 3.0, 7.5]),
    user_burst=st.sampled_from([1.0, 2.0, 2.5, 5.0]),
    ip_events_per_s=st.sampled_from([1.0, 4.0, 10.0]),
    ip_burst=st.sampled_from([1.0, 3.0, 6.5]),
    max_keys=st.integers(1, 14),
)


@settings(max_examples=400, deadline=None)
@given(
    limits=limits,
    blocked_users=st.sets(st.integers(1, 12), max_size=3),
    blocked_ips=st.sets(st.integers(1, 5), max_size=2),
    steps=st.lists(batches, min_size=1, max_size=8),
)
def test_batch_screen_gives_the_per_event_decisions_and_reasons(
    limits: ScreenLimits,
    blocked_users: set[int],
    blocked_ips: set[int],
    steps: list[tuple[int, list[tuple[int, int, int]]]],
) -> None:
    screen = SpamScreen(limits)
    screen.update_blocklist(
        spam_pb2.Blocklist(version=1, user_ids=blocked_users, ip_hashes=blocked_ips)
    )
    reference = ReferenceScreen(limits, blocked_users, blocked_ips)
    now_ms = 1_000_000
    for elapsed_ms, batch_events in steps:
        now_ms += elapsed_ms
        users = [e[0] for e in batch_events]
        ips = [e[1] for e in batch_events]
        kinds = [e[2] for e in batch_events]
        batch = batch_of(users, ips, kinds)
        deduper = RecordingDeduper()
        screened = screen.screen(batch, validated_all(batch), deduper, now_ms)

        expected = reference.decide(users, ips, now_ms)
        got = [0] * len(users)
        for rejection in screened.result.rejections:
            assert rejection.code == FAILED_PRECONDITION
            got[rejection.index] = rejection.reason
        assert got == expected
        kept = [i for i, reason in enumerate(expected) if not reason]
        assert screened.accepted_index.tolist() == kept
        assert screened.result.accepted.user_ids.tolist() == [users[i] for i in kept]
        assert deduper.forgotten == [
            (users[i], 100 + i) for i, reason in enumerate(expected) if reason and kinds[i] == VIEW
        ]


@settings(max_examples=300, deadline=None)
@given(
    rate=st.sampled_from([0.25, 1.0, 3.0]),
    burst=st.sampled_from([1.0, 1.5, 4.0]),
    max_keys=st.integers(1, 10),
    steps=st.lists(
        st.tuples(st.integers(0, 5_000), st.lists(st.integers(1, 15), max_size=30)),
        max_size=10,
    ),
)
def test_buckets_charged_by_batch_equal_one_take_at_a_time(
    rate: float, burst: float, max_keys: int, steps: list[tuple[int, list[int]]]
) -> None:
    batched = TokenBuckets(rate, burst, max_keys)
    reference = ReferenceBuckets(rate, burst, max_keys)
    now_ms = 0
    for elapsed_ms, keys in steps:
        now_ms += elapsed_ms
        allowed = batched.take_batch(np.array(keys, dtype=np.uint64), now_ms)
        assert allowed.tolist() == [reference.take(key, now_ms) for key in keys]
        assert len(batched) == len(reference._buckets) <= max_keys


def test_a_user_repeated_in_one_batch_gets_its_burst_then_refusals() -> None:
    screen = SpamScreen(ScreenLimits(1.0, 3.0, 100.0, 100.0, 10))
    batch = batch_of([7] * 5 + [8], [1] * 6, [LIKE] * 6)
    screened = screen.screen(batch, validated_all(batch), RecordingDeduper(), 0)
    assert screened.accepted_index.tolist() == [0, 1, 2, 5]
    assert {r.reason for r in screened.result.rejections} == {common_pb2.REJECT_REASON_RATE_LIMITED}
    # Two seconds later the user's bucket holds two tokens again.
    later = screen.screen(batch, validated_all(batch), RecordingDeduper(), 2_000)
    assert later.accepted_index.tolist() == [0, 1, 5]


def test_many_keys_stay_bounded_and_equal_to_one_take_at_a_time() -> None:
    # Enough keys to fill the bound, merge the key index several times and evict.
    batched = TokenBuckets(1.0, 2.0, max_keys=20_000)
    reference = ReferenceBuckets(1.0, 2.0, max_keys=20_000)
    rng = np.random.default_rng(3)
    for step in range(60):
        keys = rng.integers(1, 40_000, 1_000).astype(np.uint64)
        allowed = batched.take_batch(keys, step * 300)
        assert allowed.tolist() == [reference.take(key, step * 300) for key in keys.tolist()]
        assert len(batched) == len(reference._buckets) <= 20_000
