"""A bounded load of views whose exact outcome is known call by call, for checking counts
after the stack changed under it (scaling, drains).

Every call carries `views_per_call` views of one reel no other call uses, each from a user no
other call uses (so neither the edges' view-dedupe window nor the inline spam screen's
per-user buckets refuse any). For each reel the count must therefore be exactly
`views_per_call` if its call was acknowledged, and 0 or `views_per_call` if the call failed
(an answer lost in flight may or may not have been journaled, but a journal entry is all or
nothing). The reels are imported into the origin first, so a stack that validates reels
accepts them.
"""

from __future__ import annotations

import itertools
import threading
import time
from dataclasses import dataclass, field

import grpc

from protos import common_pb2, edge_pb2_grpc, origin_pb2, origin_pb2_grpc
from reelstream.caller_policy import ADMIN, APP
from reelstream.channels import open_blocking_channel

IMPORT_CHUNK = 1_000
CALL_TIMEOUT_S = 5.0
REEL_DURATION_MS = 20_000
WATCH_MS = 5_000


@dataclass
class CallLedger:
    """Views per reel of acknowledged calls and of calls whose outcome is unknown."""

    acknowledged: dict[int, int] = field(default_factory=dict)
    failed: dict[int, int] = field(default_factory=dict)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def record(self, reel_id: int, views: int, ok: bool) -> None:
        with self.lock:
            (self.acknowledged if ok else self.failed)[reel_id] = views


@dataclass(frozen=True)
class CountCheck:
    """How the counts read after the load compare with the ledger."""

    acknowledged_calls: int
    failed_calls: int
    lost_or_doubled: dict[int, tuple[int, int]]
    """Acknowledged reels whose count is not exactly their views: reel -> (expected, got)."""
    partial: dict[int, int]
    """Reels of failed calls counted neither 0 nor wholly: reel -> count."""

    @property
    def exact(self) -> bool:
        return not self.lost_or_doubled and not self.partial

    def as_dict(self) -> dict[str, object]:
        return {
            "exact": self.exact,
            "acknowledged_calls": self.acknowledged_calls,
            "failed_calls": self.failed_calls,
            "lost_or_doubled": len(self.lost_or_doubled),
            "partially_counted_failed_calls": len(self.partial),
            "first_lost_or_doubled (reel: expected, got)": dict(
                list(self.lost_or_doubled.items())[:10]
            ),
        }


def import_reels(origin: str, reel_ids: range) -> None:
    """Imports `reel_ids` as PUBLISHED reels (idempotent), so edges accept their events."""
    now_ms = int(time.time() * 1000)
    with open_blocking_channel(origin, ADMIN) as channel:
        stub = origin_pb2_grpc.OriginServiceStub(channel)
        for start in range(reel_ids.start, reel_ids.stop, IMPORT_CHUNK):
            reels = [
                origin_pb2.Reel(
                    reel_id=reel_id,
                    creator_id=1,
                    caption=f"counted load reel {reel_id}",
                    state=origin_pb2.REEL_STATE_PUBLISHED,
                    duration_ms=REEL_DURATION_MS,
                    created_ms=now_ms,
                )
                for reel_id in range(start, min(start + IMPORT_CHUNK, reel_ids.stop))
            ]
            stub.ImportReels(origin_pb2.ImportReelsRequest(reels=reels), timeout=30)


class CountedLoad:
    """Threads sending one call every `interval_s` each to `edge` until stopped, at most
    `max_calls` calls in all (the reels imported beforehand)."""

    def __init__(
        self,
        edge: str,
        reel_ids: range,
        views_per_call: int = 20,
        threads: int = 2,
        interval_s: float = 0.02,
    ) -> None:
        self.ledger = CallLedger()
        self._edge = edge
        self._reel_ids = iter(reel_ids)
        self._views = views_per_call
        self._threads_count = threads
        self._interval_s = interval_s
        self._users = itertools.count(1 + reel_ids.start * views_per_call)
        self._next_lock = threading.Lock()
        self._stop = threading.Event()
        self._threads: list[threading.Thread] = []

    def _next_call(self) -> tuple[int, list[int]] | None:
        with self._next_lock:
            reel_id = next(self._reel_ids, None)
            if reel_id is None:
                return None
            return reel_id, [next(self._users) for _ in range(self._views)]

    def _run(self) -> None:
        with open_blocking_channel(self._edge, APP) as channel:
            edge = edge_pb2_grpc.EdgeServiceStub(channel)
            while not self._stop.is_set():
                call = self._next_call()
                if call is None:
                    return
                reel_id, users = call
                batch = common_pb2.EventBatch(
                    reel_ids=[reel_id] * self._views,
                    user_ids=users,
                    kinds=[common_pb2.EVENT_KIND_VIEW] * self._views,
                    watch_ms=[WATCH_MS] * self._views,
                )
                try:
                    response = edge.SendEvents(batch, timeout=CALL_TIMEOUT_S)
                    ok = response.accepted == self._views
                except grpc.RpcError:
                    ok = False
                self.ledger.record(reel_id, self._views, ok)
                self._stop.wait(self._interval_s)

    def start(self) -> None:
        for _ in range(self._threads_count):
            thread = threading.Thread(target=self._run, daemon=True)
            thread.start()
            self._threads.append(thread)

    def stop(self) -> None:
        self._stop.set()
        for thread in self._threads:
            thread.join(timeout=CALL_TIMEOUT_S * 2)


def read_views(edge: str, reel_ids: list[int]) -> dict[int, int]:
    """Views of `reel_ids` as `edge` answers them."""
    views: dict[int, int] = {}
    with open_blocking_channel(edge, APP) as channel:
        stub = edge_pb2_grpc.EdgeServiceStub(channel)
        for start in range(0, len(reel_ids), IMPORT_CHUNK):
            response = stub.GetCounts(
                common_pb2.GetCountsRequest(reel_ids=reel_ids[start : start + IMPORT_CHUNK]),
                timeout=30,
            )
            views.update((c.reel_id, int(c.views)) for c in response.counts)
    return views


def check_counts(ledger: CallLedger, edge: str) -> CountCheck:
    """Compares what `edge` reads now with the ledger (call after the journals drained)."""
    every_reel = sorted({*ledger.acknowledged, *ledger.failed})
    views = read_views(edge, every_reel)
    wrong = {
        reel: (expected, views.get(reel, 0))
        for reel, expected in ledger.acknowledged.items()
        if views.get(reel, 0) != expected
    }
    partial = {
        reel: views.get(reel, 0)
        for reel, expected in ledger.failed.items()
        if views.get(reel, 0) not in (0, expected)
    }
    return CountCheck(len(ledger.acknowledged), len(ledger.failed), wrong, partial)
