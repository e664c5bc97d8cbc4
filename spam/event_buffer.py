"""The bounded buffer between SubmitEvents and the judge: never grows past its limit, and
every event it refuses is counted."""

from __future__ import annotations

from prometheus_client import Counter, Gauge

from spam.event_frame import EventFrame

RECEIVED = Counter("spam_events_received_total", "Events submitted by edges and buffered")
SHED = Counter("spam_events_shed_total", "Events not judged", ["where"])
BUFFERED = Gauge("spam_events_buffered", "Events waiting to be judged")


class EventBuffer:
    def __init__(self, max_events: int) -> None:
        self._max_events = max_events
        self._frames: list[EventFrame] = []
        self._events = 0
        self.shed = 0

    def __len__(self) -> int:
        return self._events

    def offer(self, frame: EventFrame, shed_at_edge: int = 0) -> int:
        """Buffers `frame` whole if it fits; returns how many events were taken."""
        if shed_at_edge:
            SHED.labels(where="edge").inc(shed_at_edge)
        if self._events + len(frame) > self._max_events:
            self.shed += len(frame)
            SHED.labels(where="spam_service").inc(len(frame))
            return 0
        self._frames.append(frame)
        self._events += len(frame)
        RECEIVED.inc(len(frame))
        BUFFERED.set(self._events)
        return len(frame)

    def take_all(self) -> EventFrame:
        frame = EventFrame.concat(self._frames)
        self._frames = []
        self._events = 0
        BUFFERED.set(0)
        return frame
