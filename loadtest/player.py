"""The player model: what a viewer's player fetches and when, and the QoE it experiences.

Pure code, no I/O: a driver (the Locust viewer over HTTP, or `simulate` over a bandwidth
trace in tests) asks `next_request()` which segment to fetch and how long to wait first,
fetches it, and tells the model how long that took (`segment_loaded`) or how long it waited
(`advance`). The model keeps the media clock:

- Playback starts once `startup_buffer_s` of media is buffered (or the whole reel is).
- While playing, time spent downloading or waiting drains the buffer; when the buffer runs
  dry before the viewer is done, the player stalls (rebuffering) until the next segment.
- The viewer stops when they have watched `watch_target_s` of media or the reel ends.

QoE, as the notes list it: startup time, rebuffer ratio (stalled / (stalled + played)),
average bitrate (nominal bitrate of the rungs played, weighted by media time) and the number
of rung switches between consecutive segments.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from loadtest.abr import AbrParameters, DynamicAbr


@dataclass(frozen=True)
class SegmentRequest:
    """Fetch segment `index` of rung `rung`, after waiting `delay_s`."""

    rung: int
    index: int
    delay_s: float


@dataclass(frozen=True)
class QoeReport:
    """What one playback session was like for the viewer."""

    startup_s: float | None
    """From the session's start to the first frame; None if playback never started."""
    played_s: float
    """Media time watched."""
    rebuffer_s: float
    """Time stalled after playback had started."""
    average_bitrate_bps: float
    """Nominal bitrate of the rungs played, weighted by media time (0 if nothing played)."""
    switches: int
    """Rung changes between consecutive segments."""
    bytes_fetched: int
    segments_fetched: int

    @property
    def rebuffer_ratio(self) -> float:
        total = self.played_s + self.rebuffer_s
        return self.rebuffer_s / total if total else 0.0


class PlayerModel:
    """One viewer watching one reel: segment choice (via `DynamicAbr`) and the media clock."""

    def __init__(
        self,
        bitrates_bps: Sequence[float],
        segment_durations_s: Sequence[float],
        watch_target_s: float,
        startup_buffer_s: float = 2.0,
        parameters: AbrParameters | None = None,
    ) -> None:
        if not segment_durations_s:
            raise ValueError("a reel needs at least one segment")
        self._bitrates = list(bitrates_bps)
        self._durations = list(segment_durations_s)
        self._target_s = min(watch_target_s, sum(self._durations))
        self._startup_buffer_s = min(startup_buffer_s, self._target_s)
        self.abr = DynamicAbr(self._bitrates, parameters)
        self.clock_s = 0.0
        self.buffer_s = 0.0
        self.played_s = 0.0
        self.rebuffer_s = 0.0
        self.startup_s: float | None = None
        self._next_index = 0
        self._buffered_media_s = 0.0
        self._rungs: list[int] = []
        self._bitrate_media_s = 0.0
        self._bytes = 0

    @property
    def playing(self) -> bool:
        return self.startup_s is not None

    @property
    def done(self) -> bool:
        """The viewer has watched what they meant to (or the whole reel)."""
        return self.played_s >= self._target_s - 1e-9

    @property
    def last_rung(self) -> int | None:
        return self._rungs[-1] if self._rungs else None

    def next_request(self) -> SegmentRequest | None:
        """The next segment to fetch, or None when nothing more is needed: the buffered
        media covers the rest of the watch (the driver then plays it out with `finish`)."""
        if self.done or self._next_index >= len(self._durations):
            return None
        if self._buffered_media_s >= self._target_s - 1e-9:
            return None
        decision = self.abr.decide(self.buffer_s, self.last_rung)
        # Never wait past the point where the buffer would run dry.
        delay_s = min(decision.delay_s, self.buffer_s) if self.playing else 0.0
        return SegmentRequest(decision.rung, self._next_index, delay_s)

    def advance(self, seconds: float) -> None:
        """Time passes with no segment arriving (waiting, fetching playlists)."""
        if seconds <= 0:
            return
        self.clock_s += seconds
        if not self.playing:
            return
        remaining_s = self._target_s - self.played_s
        playable_s = min(self.buffer_s, remaining_s)
        if seconds <= playable_s:
            self.buffer_s -= seconds
            self.played_s += seconds
            return
        self.buffer_s -= playable_s
        self.played_s += playable_s
        if self.played_s < self._target_s - 1e-9:
            self.rebuffer_s += seconds - playable_s

    def segment_loaded(self, request: SegmentRequest, size_bytes: int, download_s: float) -> None:
        """Segment `request` arrived after `download_s` of downloading (the delay excluded)."""
        self.advance(download_s)
        duration_s = self._durations[request.index]
        self.abr.estimator.add_sample(duration_s, size_bytes, download_s)
        self.buffer_s += duration_s
        self._buffered_media_s += duration_s
        self._next_index = request.index + 1
        self._rungs.append(request.rung)
        self._bytes += size_bytes
        watched_part_s = min(
            duration_s, max(0.0, self._target_s - (self._buffered_media_s - duration_s))
        )
        self._bitrate_media_s += watched_part_s * self._bitrates[request.rung]
        if not self.playing and (
            self.buffer_s >= self._startup_buffer_s - 1e-9
            or self._next_index >= len(self._durations)
        ):
            self.startup_s = self.clock_s

    def time_to_finish_s(self) -> float:
        """Playback time left once nothing more will be fetched."""
        if not self.playing:
            return 0.0
        return min(self.buffer_s, self._target_s - self.played_s)

    def report(self) -> QoeReport:
        played_media_s = min(self._buffered_media_s, self._target_s)
        average = self._bitrate_media_s / played_media_s if played_media_s else 0.0
        switches = sum(1 for a, b in zip(self._rungs, self._rungs[1:], strict=False) if a != b)
        return QoeReport(
            startup_s=self.startup_s,
            played_s=self.played_s,
            rebuffer_s=self.rebuffer_s,
            average_bitrate_bps=average,
            switches=switches,
            bytes_fetched=self._bytes,
            segments_fetched=len(self._rungs),
        )

    @property
    def rungs_fetched(self) -> list[int]:
        return list(self._rungs)


@dataclass(frozen=True)
class BandwidthTrace:
    """Piecewise-constant bandwidth: `rates_bps[i]` holds for `step_s` seconds; the last
    rate holds forever."""

    rates_bps: Sequence[float]
    step_s: float = 1.0

    def rate_at(self, time_s: float) -> float:
        index = min(int(time_s / self.step_s), len(self.rates_bps) - 1)
        return self.rates_bps[index]

    def download_s(self, start_s: float, size_bytes: int) -> float:
        """How long `size_bytes` take to arrive when the download starts at `start_s`."""
        bits_left = size_bytes * 8.0
        now_s = start_s
        while True:
            rate = self.rate_at(now_s)
            step_end_s = (int(now_s / self.step_s) + 1) * self.step_s
            index = int(now_s / self.step_s)
            if index >= len(self.rates_bps) - 1 or rate * (step_end_s - now_s) >= bits_left:
                return now_s + bits_left / rate - start_s
            bits_left -= rate * (step_end_s - now_s)
            now_s = step_end_s


def simulate(
    model: PlayerModel,
    segment_bytes: Sequence[Sequence[int]],
    trace: BandwidthTrace,
    latency_s: float = 0.0,
) -> QoeReport:
    """Plays `model` to its end over `trace`; `segment_bytes[rung][index]` are the sizes."""
    while (request := model.next_request()) is not None:
        model.advance(request.delay_s)
        size = segment_bytes[request.rung][request.index]
        download_s = latency_s + trace.download_s(model.clock_s + latency_s, size)
        model.segment_loaded(request, size, download_s)
    model.advance(model.time_to_finish_s())
    return model.report()
