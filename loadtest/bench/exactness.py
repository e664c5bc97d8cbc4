"""After the load: wait until every edge's journal is drained, then check sampled counts.

The expected counts come from what the driver knows: how many times each pooled batch was
acknowledged (and how many calls ended with an unknown outcome, e.g. a deadline, which makes
the expectation a range). Views are sums; likes are the distinct (user, reel) LIKE pairs of
the batches sent (see `workload.py` for why that is order-independent).
"""

from __future__ import annotations

import asyncio
import re
import time
import urllib.request
from dataclasses import dataclass, field

import numpy as np

from loadtest.bench.grpc_driver import DriveResult
from loadtest.bench.workload import PAIR_SHIFT, BatchPool, IntArray
from protos import common_pb2, edge_pb2_grpc
from reelstream.channels import open_channel

DEPTH = re.compile(r"^edge_journal_depth_events\s+([0-9.e+]+)$", re.MULTILINE)


def journal_depth(metrics_port: int) -> int:
    """The edge's `edge_journal_depth_events` gauge, from its Prometheus endpoint."""
    url = f"http://127.0.0.1:{metrics_port}/metrics"
    with urllib.request.urlopen(url, timeout=5) as response:
        text = response.read().decode()
    match = DEPTH.search(text)
    if match is None:
        raise RuntimeError(f"{url} has no edge_journal_depth_events")
    return int(float(match.group(1)))


async def wait_drained(
    metrics_ports: list[int], timeout_s: float, stall_s: float | None = None
) -> float:
    """Seconds until every edge reports an empty journal and outbox.

    Raises:
        TimeoutError: events are still unacknowledged after `timeout_s`, or (with
            `stall_s`) none was acknowledged for `stall_s`: a full journal drains at the
            shards' rate, so a backlog that shrinks steadily is slow, not stuck.
    """
    start = time.monotonic()
    lowest: int | None = None
    progressed_at = start
    while True:
        depths = [await asyncio.to_thread(journal_depth, port) for port in metrics_ports]
        if not any(depths):
            return time.monotonic() - start
        now = time.monotonic()
        if lowest is None or sum(depths) < lowest:
            lowest, progressed_at = sum(depths), now
        if now - start > timeout_s:
            raise TimeoutError(f"journals still hold {depths} events after {timeout_s:.0f} s")
        if stall_s is not None and now - progressed_at > stall_s:
            raise TimeoutError(
                f"journals still hold {depths} events, none acknowledged for {stall_s:.0f} s"
            )
        await asyncio.sleep(0.25)


@dataclass
class ExactnessReport:
    reels_checked: int
    view_mismatches: list[tuple[int, int, int, int]] = field(default_factory=list)
    like_mismatches: list[tuple[int, int, int, int]] = field(default_factory=list)
    expected_views: int = 0
    observed_views: int = 0
    edges_disagree: int = 0
    unknown_outcomes: int = 0
    accepted_mismatches: int = 0

    @property
    def exact(self) -> bool:
        return not (
            self.view_mismatches
            or self.like_mismatches
            or self.edges_disagree
            or self.accepted_mismatches
        )

    def as_dict(self) -> dict[str, object]:
        return {
            "exact": self.exact,
            "reels_checked": self.reels_checked,
            "expected_views": self.expected_views,
            "observed_views": self.observed_views,
            "view_mismatches": len(self.view_mismatches),
            "like_mismatches": len(self.like_mismatches),
            "first_view_mismatches (reel, lo, hi, got)": self.view_mismatches[:10],
            "first_like_mismatches (reel, lo, hi, got)": self.like_mismatches[:10],
            "edges_disagree": self.edges_disagree,
            "unknown_outcome_calls": self.unknown_outcomes,
            "accepted_mismatch_calls": self.accepted_mismatches,
        }


def _expected(
    runs: list[tuple[BatchPool, DriveResult]], sample_size: int, with_unknown: bool
) -> tuple[IntArray, IntArray]:
    views = np.zeros(sample_size, dtype=np.int64)
    pairs: list[IntArray] = []
    for pool, result in runs:
        sends = result.sends + (result.unknown if with_unknown else 0)
        views += pool.expected_views(sends)
        pairs.append(pool.like_pairs(sends))
    unique = np.unique(np.concatenate(pairs)) if pairs else np.zeros(0, dtype=np.int64)
    likes = np.bincount(unique >> PAIR_SHIFT, minlength=sample_size).astype(np.int64)
    return views, likes


async def read_counts(address: str, reel_ids: list[int]) -> list[common_pb2.ReelCounts]:
    async with open_channel(address) as channel:
        stub = edge_pb2_grpc.EdgeServiceStub(channel)
        request = common_pb2.GetCountsRequest(reel_ids=reel_ids)
        response = await stub.GetCounts(request, timeout=30)
        return list(response.counts)


async def check_counts(
    runs: list[tuple[BatchPool, DriveResult]], edge_addresses: list[str]
) -> ExactnessReport:
    """Compares the sampled reels' counts at every edge with what was acknowledged."""
    sample = runs[0][0].sample_reels
    reel_ids = [int(r) for r in sample]
    low_views, low_likes = _expected(runs, len(sample), with_unknown=False)
    high_views, high_likes = _expected(runs, len(sample), with_unknown=True)
    report = ExactnessReport(len(reel_ids))
    report.unknown_outcomes = int(sum(r.unknown.sum() for _, r in runs))
    report.accepted_mismatches = sum(r.accepted_mismatches for _, r in runs)
    report.expected_views = int(low_views.sum())
    answers = [await read_counts(address, reel_ids) for address in edge_addresses]
    first = answers[0]
    report.observed_views = sum(int(c.views) for c in first)
    for other in answers[1:]:
        report.edges_disagree += sum(
            1 for a, b in zip(first, other, strict=True) if (a.views, a.likes) != (b.views, b.likes)
        )
    for slot, counts in enumerate(first):
        if not low_views[slot] <= counts.views <= high_views[slot]:
            report.view_mismatches.append(
                (reel_ids[slot], int(low_views[slot]), int(high_views[slot]), int(counts.views))
            )
        if not low_likes[slot] <= counts.likes <= high_likes[slot]:
            report.like_mismatches.append(
                (reel_ids[slot], int(low_likes[slot]), int(high_likes[slot]), int(counts.likes))
            )
    return report
