"""Event intake: validate, apply the view rule, journal durably, then acknowledge."""

from __future__ import annotations

import time

from prometheus_client import Counter

from edge.config import EdgeConfig
from edge.event_validation import ValidationRules, check_shape, validate_batch
from edge.journal import EdgeJournal
from edge.reel_directory import ReelDirectory
from edge.spam_forwarder import SpamForwarder
from edge.spam_screen import SpamScreen, accepted_positions
from edge.view_deduper import ViewDeduper
from protos import common_pb2, edge_pb2
from reelstream.request_limits import MAX_ID

EVENTS_ACCEPTED = Counter("edge_events_accepted_total", "Events journaled")
EVENTS_REJECTED = Counter("edge_events_rejected_total", "Events not counted", ["reason"])


class EventIntake:
    def __init__(
        self,
        config: EdgeConfig,
        journal: EdgeJournal,
        directory: ReelDirectory | None,
        screen: SpamScreen | None = None,
        forwarder: SpamForwarder | None = None,
    ) -> None:
        self._screen = screen
        self._forwarder = forwarder
        self._journal = journal
        self._admission_wait_s = config.admission_wait_s
        self._directory = directory
        self._rules = ValidationRules(
            view_threshold_ms=config.view_threshold_ms,
            max_watch_ms=config.max_watch_ms,
            max_future_skew_ms=config.max_future_skew_ms,
            max_event_age_ms=config.max_event_age_ms,
            max_batch_events=config.max_batch_events,
        )
        self._deduper = ViewDeduper(
            int(config.view_dedupe_window_s * 1000), config.view_dedupe_max_entries
        )

    async def submit(
        self, batch: common_pb2.EventBatch, deadline_s: float | None = None
    ) -> edge_pb2.SendEventsResponse:
        """Journals the valid events of `batch`; returns when they are durable.

        `deadline_s` is the time the caller has left (None: no deadline): a call held
        while a shard is behind is held for at most half of it, so a caller with a short
        deadline hears RESOURCE_EXHAUSTED (nothing journaled, retry) rather than
        DEADLINE_EXCEEDED (outcome unknown).

        Raises:
            MalformedBatch, JournalFull, JournalUnavailable: nothing was journaled.
        """
        check_shape(batch, self._rules.max_batch_events)
        # Held, then refused, before any work while a shard this call has events for is
        # behind; `append` checks again with the events that passed.
        hold_s = self._admission_wait_s
        if deadline_s is not None:
            hold_s = min(hold_s, max(0.0, deadline_s / 2))
        await self._journal.admit(hold_s, batch.reel_ids)
        reels = None
        if self._directory is not None:
            reels = await self._directory.lookup(r for r in batch.reel_ids if 0 < r <= MAX_ID)
        now_ms = int(time.time() * 1000)
        result = validate_batch(batch, self._rules, self._deduper, now_ms, reels)
        accepted_index = None
        if self._screen is not None:
            screened = self._screen.screen(batch, result, self._deduper, now_ms)
            result, accepted_index = screened.result, screened.accepted_index
        for rejection in result.rejections:
            EVENTS_REJECTED.labels(reason=common_pb2.RejectReason.Name(rejection.reason)).inc()
        accepted = result.accepted
        if len(accepted):
            try:
                await self._journal.append(accepted)
            except BaseException:
                # Not journaled: a retry of these views must be allowed to count.
                views = accepted.kinds == common_pb2.EVENT_KIND_VIEW
                self._deduper.forget(accepted.user_ids[views], accepted.reel_ids[views])
                raise
            EVENTS_ACCEPTED.inc(len(accepted))
            if self._forwarder is not None:
                if accepted_index is None:
                    accepted_index = accepted_positions(len(batch.reel_ids), result)
                self._forwarder.offer(batch, accepted_index)
        return edge_pb2.SendEventsResponse(accepted=len(accepted), rejections=result.rejections)


def single_event_batch(event: common_pb2.Event) -> common_pb2.EventBatch:
    """The one-event call as a batch of one."""
    batch = common_pb2.EventBatch(
        reel_ids=[event.reel_id],
        user_ids=[event.user_id],
        kinds=[event.kind],
        watch_ms=[event.watch_ms],
        client_ts_ms=[event.client_ts_ms],
        devices=[event.device],
        ip_hashes=[event.ip_hash],
    )
    if event.country:
        batch.countries = event.country.encode("ascii", "replace")[:2].ljust(2, b"?")
    return batch
