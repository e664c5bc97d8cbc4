"""Spam filtering end to end: simulated organic and attack traffic through a real edge
(screen on, forwarding to a real spam service), a real counter shard and origin; after the
filter runs, public counts equal the organic counts within the stated error, and what the
counters show as removed equals what the spam service reports as caught. An appeal
restores a verdict's counts exactly. A crash and restart of the spam service forgets no
verdict (reports, appeals) and re-applies no correction."""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Callable
from dataclasses import replace

import grpc
import numpy as np
import pytest

from loadtest.spam_traffic import Family, TrafficSpec, passes_view_rule, simulate
from protos import common_pb2, edge_pb2_grpc, origin_pb2, origin_pb2_grpc, spam_pb2, spam_pb2_grpc
from spam.event_frame import VIEW
from tests.integration.conftest import ServiceProcess, counter_env, edge_env, free_port

# Stated error: public views may differ from organic views by at most 1% of them in total
# (missed bots plus organic views removed).
MAX_VIEW_ERROR_SHARE = 0.01
BATCH = 2_000
JUDGE_INTERVAL_S = 2
SETTLE_S = 15


def poll(check: Callable[[], bool], timeout_s: float, what: str) -> None:
    deadline = time.monotonic() + timeout_s
    while not check():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.5)


def test_spam_is_removed_from_public_counts_and_an_appeal_restores_it(
    cassandra: str, redis_port: int, keyspace: str, start_service: Callable[..., ServiceProcess]
) -> None:
    duration_s = 1_200
    now_ms = int(time.time() * 1000)
    spec = replace(
        TrafficSpec(seed=7, start_ms=now_ms - duration_s * 1000 - 60_000),
        duration_s=duration_s,
        reels=300,
        organic_users=1_500,
        attackers={Family.SHORT_WATCH: 15, Family.LOCKSTEP: 50, Family.LIKE_FARM: 40},
    )
    traffic = simulate(spec)
    traffic = traffic.take(passes_view_rule(traffic))
    events = traffic.events

    origin_address = f"127.0.0.1:{free_port()}"
    start_service(
        "origin",
        "origin",
        {
            "REELSTREAM_ORIGIN_GRPC_ADDRESS": origin_address,
            "REELSTREAM_ORIGIN_METRICS_PORT": "0",
            "REELSTREAM_ORIGIN_KEYSPACE": keyspace,
        },
        origin_address,
    )
    counter_address = f"127.0.0.1:{free_port()}"
    start_service(
        "counter", "counter-0", counter_env(keyspace, 0, 1, counter_address), counter_address
    )
    spam_address = f"127.0.0.1:{free_port()}"
    spam_env = {
        "REELSTREAM_SPAM_GRPC_ADDRESS": spam_address,
        "REELSTREAM_SPAM_METRICS_PORT": "0",
        "REELSTREAM_SPAM_KEYSPACE": keyspace,
        "REELSTREAM_SPAM_COUNTER_ADDRESSES": counter_address,
        # The counter runs a ring of one logical shard (counter_env above); so must spam.
        "REELSTREAM_SPAM_SHARD_COUNT": "1",
        "REELSTREAM_SPAM_ORIGIN_ADDRESS": origin_address,
        # Judged every 2 s, but an event is removed only 15 s after it arrived: judged on
        # a prefix (the replay's 20 minutes arrive over seconds) per-user features are
        # incomplete and flag organic users (docs/spam.md, "Judging incomplete windows";
        # a CI run that removed at once, judging every 1 s, flagged 45 organic views).
        "REELSTREAM_SPAM_JUDGE_INTERVAL_S": str(JUDGE_INTERVAL_S),
        "REELSTREAM_SPAM_SETTLE_S": str(SETTLE_S),
        # Lockstep every round too: with the default 30 s, a group's removal could land
        # between the reads that check the counts stable and an appeal restored exactly.
        "REELSTREAM_SPAM_LOCKSTEP_INTERVAL_S": str(JUDGE_INTERVAL_S),
    }
    spam_service = start_service("spam", "spam", spam_env, spam_address)
    edge_address = f"127.0.0.1:{free_port()}"
    start_service(
        "edge",
        "edge-0",
        {
            **edge_env(
                keyspace, "edge-0", edge_address, redis_port, [counter_address], origin_address
            ),
            "REELSTREAM_EDGE_SPAM_SCREEN_ENABLED": "true",
            # The replay sends 20 minutes of traffic in seconds, so the edge's view dedupe
            # (30 s of server time) would refuse every repeat view, which 30 s windows of
            # real time do not: the spam service would judge users with their repeat views
            # cut out (offline, that flags 39 organic views instead of 3).
            "REELSTREAM_EDGE_VIEW_DEDUPE_WINDOW_S": "0",
            "REELSTREAM_EDGE_SPAM_ADDRESS": spam_address,
        },
        edge_address,
    )
    with grpc.insecure_channel(origin_address) as channel:
        catalog = [
            origin_pb2.Reel(reel_id=r, state=origin_pb2.REEL_STATE_PUBLISHED, duration_ms=int(d))
            for r, d in enumerate(traffic.reel_durations_ms.tolist(), start=1)
        ]
        origin_pb2_grpc.OriginServiceStub(channel).ImportReels(
            origin_pb2.ImportReelsRequest(reels=catalog), timeout=30
        )

    organic_views: Counter[int] = Counter()
    spam_views_counted = 0
    with (
        grpc.insecure_channel(edge_address) as edge_channel,
        grpc.insecure_channel(spam_address) as spam_channel,
    ):
        edge = edge_pb2_grpc.EdgeServiceStub(edge_channel)
        spam = spam_pb2_grpc.SpamServiceStub(spam_channel)
        for start in range(0, len(events), BATCH):
            part = events.take(np.arange(start, min(start + BATCH, len(events))))
            response = edge.SendEvents(part.to_batch(), timeout=30)
            accepted = np.ones(len(part), dtype=np.bool_)
            accepted[[r.index for r in response.rejections]] = False
            family = traffic.family[start : start + len(part)]
            views = accepted & (part.kinds == VIEW)
            organic_views.update(part.reel_ids[views & (family == Family.ORGANIC)].tolist())
            spam_views_counted += int((views & (family != Family.ORGANIC)).sum())
        # Every event gets its verdicts in the rounds after it settles: until those have
        # run, the counts can look stable between two verdicts (one CI-like run saw two,
        # 4.4 s apart, and read the counts in between).
        all_judged_at = time.monotonic() + SETTLE_S + 3 * JUDGE_INTERVAL_S
        reel_ids = [int(r) for r in range(1, spec.reels + 1)]

        def counts() -> dict[int, common_pb2.ReelCounts]:
            response = edge.GetCounts(common_pb2.GetCountsRequest(reel_ids=reel_ids), timeout=10)
            return {c.reel_id: c for c in response.counts}

        def reports() -> dict[int, spam_pb2.SpamReport]:
            return {
                r: spam.GetSpamReport(spam_pb2.GetSpamReportRequest(reel_id=r), timeout=10)
                for r in reel_ids
            }

        previous: list[int] = []

        def settled() -> bool:
            removed = sum(c.views_removed for c in counts().values())
            reported = sum(r.views_removed for r in reports().values())
            previous.append(removed)
            return (
                time.monotonic() >= all_judged_at
                and removed > 0
                and removed == reported
                and previous[-3:] == [removed] * 3
            )

        poll(settled, 60, "verdicts applied and stable")
        final = counts()
        report = reports()
        organic_total = sum(organic_views.values())
        error = sum(abs(final[r].views - organic_views.get(r, 0)) for r in reel_ids)
        removed_total = sum(c.views_removed for c in final.values())
        print(
            f"organic views {organic_total}, spam views counted {spam_views_counted},"
            f" removed {removed_total}, absolute error {error}"
            f" ({error / organic_total:.4%} of organic)"
        )
        assert error <= MAX_VIEW_ERROR_SHARE * organic_total
        for r in reel_ids:
            assert final[r].views_removed == report[r].views_removed
            assert final[r].likes_removed == report[r].likes_removed

        # An appeal: the verdict's removals come back exactly.
        reel = max(reel_ids, key=lambda r: final[r].views_removed)
        verdict_id = report[reel].verdict_ids[0]
        restored = spam.ReverseVerdict(
            spam_pb2.ReverseVerdictRequest(verdict_id=verdict_id, reason="appeal"), timeout=30
        )
        assert restored.views_restored > 0
        views_before = sum(c.views for c in final.values())
        removed_before = sum(c.views_removed for c in final.values())

        def restored_exactly() -> bool:
            after = counts().values()
            return sum(c.views for c in after) - views_before == restored.views_restored and (
                removed_before - sum(c.views_removed for c in after) == restored.views_restored
            )

        poll(restored_exactly, 10, "the appeal's views restored exactly")

        # Crash (SIGKILL) and restart: the verdicts come back from Cassandra, nothing is
        # removed or restored a second time.
        before_counts = counts()
        before_reports = reports()
        spam_service.process.kill()
        spam_service.process.wait()
        start_service("spam", "spam-restarted", spam_env, spam_address)
        assert reports() == before_reports
        with pytest.raises(grpc.RpcError) as again:
            spam.ReverseVerdict(
                spam_pb2.ReverseVerdictRequest(verdict_id=verdict_id, reason="twice"), timeout=30
            )
        assert again.value.code() == grpc.StatusCode.FAILED_PRECONDITION
        time.sleep(3)  # three judge rounds of the restarted service (interval 1 s)
        assert counts() == before_counts
        # Another verdict (when the run made more than one) is still appealable after the
        # restart, and restores exactly.
        others = [v for r in reel_ids for v in before_reports[r].verdict_ids if v != verdict_id]
        if others:
            second = spam.ReverseVerdict(
                spam_pb2.ReverseVerdictRequest(verdict_id=others[0], reason="appeal"), timeout=30
            )
            views_now = sum(c.views for c in before_counts.values())

            def second_restored() -> bool:
                views = sum(c.views for c in counts().values())
                return views - views_now == second.views_restored

            poll(second_restored, 10, "the second appeal's views restored exactly")
