"""Viewers: scroll the feed, watch, like and unlike, read counts, report views to the edge.

- `Viewer` (on by default): watch times are drawn from the viewing mix and waited out
  (scaled by time_scale); no video is fetched.
- `PlayerViewer`: picks one of the process's playable reels (uploaded through the origin:
  configured, seeded at test start or published by creators), fetches the master playlist
  from its edge over HTTP and plays the reel with the player model, reporting QoE; the
  view then carries the media time really played. When playback fails (404, 503, no
  answer), the failed request is in the stats and the viewer falls back to the drawn watch
  time, so the counting path is still exercised. With no playable reel after
  `media_wait_s`, it watches the simulated catalog without video.
"""

from __future__ import annotations

import logging

from locust import between, task
from locust.clients import HttpSession
from locust.env import Environment

from loadtest import suite_config
from loadtest.custom_stats import fire_qoe
from loadtest.users.edge_user import EdgeUser, PendingEvents
from loadtest.users.playback import HlsPlayback, PlaybackFailed
from loadtest.viewer_behaviour import ReelPicker, WatchPlan, plan_watch
from protos import common_pb2

WEIGHTS = suite_config.settings().weight_table()
logger = logging.getLogger(__name__)


class Viewer(EdgeUser):
    """A person scrolling reels in the app."""

    weight = WEIGHTS["viewer"]
    wait_time = between(0.2, 1.0)

    def __init__(self, environment: Environment) -> None:
        super().__init__(environment)
        self.liked: list[int] = []
        self.picker: ReelPicker = suite_config.reel_picker()

    def on_start(self) -> None:
        self.resolve_edge()

    @task
    def watch_next_reel(self) -> None:
        reel_id = self.next_reel()
        if self.rng.random() < self.settings.counts_probability:
            self.read_counts([reel_id])
        plan = plan_watch(self.rng, self.settings.reel_duration_ms, self.settings.like_probability)
        watch_ms = self.watch(reel_id, plan)
        self.report(reel_id, watch_ms, plan.like)

    def next_reel(self) -> int:
        return self.picker.pick(self.rng)

    def watch(self, reel_id: int, plan: WatchPlan) -> int:
        """Watches the reel; returns the watch time to report."""
        self.pause(plan.watch_ms / 1000)
        return plan.watch_ms

    def report(self, reel_id: int, watch_ms: int, like: bool) -> None:
        pending = PendingEvents()
        pending.add(reel_id, common_pb2.EVENT_KIND_VIEW, watch_ms)
        if like and reel_id not in self.liked:
            pending.add(reel_id, common_pb2.EVENT_KIND_LIKE)
            self.liked.append(reel_id)
        elif self.liked and self.rng.random() < self.settings.unlike_probability:
            unliked = self.liked.pop(self.rng.randrange(len(self.liked)))
            pending.add(unliked, common_pb2.EVENT_KIND_UNLIKE)
        self.send(pending)


class PlayerViewer(Viewer):
    """A viewer whose app really plays the video over HLS."""

    weight = WEIGHTS["player_viewer"]

    def __init__(self, environment: Environment) -> None:
        super().__init__(environment)
        self.playable = suite_config.playable_reels()
        self.http = HttpSession(base_url="", request_event=environment.events.request, user=self)

    def on_start(self) -> None:
        super().on_start()
        if not self.playable.wait_any(self.settings.media_wait_s):
            wait_s = self.settings.media_wait_s
            logger.warning("no playable reel after %g s: watching without video", wait_s)

    def next_reel(self) -> int:
        reel_id = self.playable.pick(self.rng)
        return super().next_reel() if reel_id is None else reel_id

    def watch(self, reel_id: int, plan: WatchPlan) -> int:
        if reel_id not in self.playable:
            return super().watch(reel_id, plan)
        playback = HlsPlayback(
            self.http,
            self.settings.http_edge(self.edge_index),
            reel_id,
            self.settings.http_timeout_s,
        )
        try:
            report = playback.play(plan.watch_ms / 1000)
        except PlaybackFailed:
            return super().watch(reel_id, plan)
        fire_qoe(self.environment, report, self.context())
        return int(report.played_s * 1000)

    def on_stop(self) -> None:
        self.http.close()
        super().on_stop()
