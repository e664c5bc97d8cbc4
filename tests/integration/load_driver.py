"""A bounded load of view events whose outcome is known call by call.

Every call carries `views_per_call` views of one reel no other call uses, from distinct
users. So for each reel the count must be exactly `views_per_call` if the call was
acknowledged, and either 0 or `views_per_call` if it failed (a call whose answer was lost
may or may not have been journaled, but a journal entry is all or nothing).
"""

from __future__ import annotations

import itertools
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field

import grpc

from protos import common_pb2, edge_pb2_grpc


@dataclass
class CallLedger:
    acknowledged: dict[int, int] = field(default_factory=dict)
    failed: dict[int, int] = field(default_factory=dict)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def record(self, reel_id: int, views: int, ok: bool) -> None:
        with self.lock:
            (self.acknowledged if ok else self.failed)[reel_id] = views


class LoadDriver:
    """Threads sending calls round-robin to edges until stopped (or `max_seconds`)."""

    def __init__(
        self,
        edge_addresses: list[str],
        views_per_call: int = 50,
        threads_per_edge: int = 2,
        first_reel_id: int = 1_000_000,
        max_seconds: float = 300.0,
        reel_count: int | None = None,
    ) -> None:
        self.ledger = CallLedger()
        self._addresses = edge_addresses
        self._views = views_per_call
        self._threads_per_edge = threads_per_edge
        # With `reel_count`, calls stop once that many reels were used (e.g. reels imported
        # into the origin for an edge that validates them).
        self._reel_ids: Iterator[int] = (
            itertools.count(first_reel_id)
            if reel_count is None
            else iter(range(first_reel_id, first_reel_id + reel_count))
        )
        self._reel_lock = threading.Lock()
        self._stop = threading.Event()
        self._deadline = time.monotonic() + max_seconds
        self._threads: list[threading.Thread] = []

    def _next_reel(self) -> int | None:
        with self._reel_lock:
            return next(self._reel_ids, None)

    def _run(self, address: str) -> None:
        with grpc.insecure_channel(address) as channel:
            edge = edge_pb2_grpc.EdgeServiceStub(channel)
            while not self._stop.is_set() and time.monotonic() < self._deadline:
                reel_id = self._next_reel()
                if reel_id is None:
                    return
                batch = common_pb2.EventBatch(
                    reel_ids=[reel_id] * self._views,
                    user_ids=range(1, self._views + 1),
                    kinds=[common_pb2.EVENT_KIND_VIEW] * self._views,
                    watch_ms=[5_000] * self._views,
                )
                try:
                    response = edge.SendEvents(batch, timeout=2)
                    ok = response.accepted == self._views
                except grpc.RpcError:
                    ok = False
                self.ledger.record(reel_id, self._views, ok)
                if not ok:
                    time.sleep(0.05)

    def start(self) -> None:
        for address in self._addresses:
            for _ in range(self._threads_per_edge):
                thread = threading.Thread(target=self._run, args=(address,), daemon=True)
                thread.start()
                self._threads.append(thread)

    def stop(self) -> None:
        self._stop.set()
        for thread in self._threads:
            thread.join(timeout=10)
