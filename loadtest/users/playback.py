"""Playing one reel over HTTP with the player model: master playlist, the chosen rung's
media playlist and init section, then segments, in real time.

Every HTTP request goes through Locust's HttpSession (so each is a request in the stats,
grouped by kind of object); the model decides what to fetch and how long to wait, and is
told how long each fetch took.
"""

from __future__ import annotations

import time

from locust.clients import HttpSession

from loadtest.hls_playlist import MediaPlaylist, PlaylistError, Variant, parse_master, parse_media
from loadtest.player import PlayerModel, QoeReport


class PlaybackFailed(Exception):
    """The reel could not be played (the failed request is already in Locust's stats)."""


class HlsPlayback:
    """One viewer's HLS client for one reel."""

    def __init__(self, session: HttpSession, base_url: str, reel_id: int, timeout_s: float):
        self._session = session
        self._master_url = f"{base_url}/reels/{reel_id}/master.m3u8"
        self._timeout_s = timeout_s
        self._playlists: dict[int, MediaPlaylist] = {}
        self._initialised: set[int] = set()
        self._variants: list[Variant] = []

    def _get(self, url: str, name: str) -> bytes:
        with self._session.get(
            url, name=name, timeout=self._timeout_s, catch_response=True
        ) as response:
            if response.status_code != 200:
                # Status 0: no HTTP answer at all (connection refused: no HLS edge there).
                why = f"HTTP {response.status_code}" if response.status_code else "no response"
                response.failure(why)
                raise PlaybackFailed(f"{url}: {why}")
            return bytes(response.content)

    def _playlist(self, rung: int) -> MediaPlaylist:
        playlist = self._playlists.get(rung)
        if playlist is None:
            uri = self._variants[rung].uri
            try:
                playlist = parse_media(self._get(uri, "/reels/[id]/[rung].m3u8").decode(), uri)
            except (PlaylistError, UnicodeDecodeError) as exc:
                raise PlaybackFailed(f"{uri}: {exc}") from exc
            self._playlists[rung] = playlist
        return playlist

    def play(self, watch_target_s: float) -> QoeReport:
        """Plays up to `watch_target_s` of the reel; raises PlaybackFailed."""
        started = time.perf_counter()
        try:
            self._variants = parse_master(
                self._get(self._master_url, "/reels/[id]/master.m3u8").decode(), self._master_url
            )
        except (PlaylistError, UnicodeDecodeError) as exc:
            raise PlaybackFailed(f"{self._master_url}: {exc}") from exc
        bitrates = [float(v.bitrate_bps) for v in self._variants]
        # The start rung's playlist gives the segment timeline (rungs are aligned).
        probe = PlayerModel(bitrates, [1.0], watch_target_s)
        first = probe.next_request()
        first_rung = first.rung if first else 0
        timeline = self._playlist(first_rung)
        model = PlayerModel(bitrates, timeline.durations_s, watch_target_s)
        model.advance(time.perf_counter() - started)
        while (request := model.next_request()) is not None:
            if request.delay_s > 0:
                time.sleep(request.delay_s)
                model.advance(request.delay_s)
            fetch_started = time.perf_counter()
            playlist = self._playlist(request.rung)
            size = 0
            if request.rung not in self._initialised and playlist.init_uri:
                size += len(self._get(playlist.init_uri, "/reels/[id]/[rung]_init.mp4"))
                self._initialised.add(request.rung)
            size += len(self._get(playlist.segment_uris[request.index], "/reels/[id]/[segment]"))
            model.segment_loaded(request, size, time.perf_counter() - fetch_started)
        finish_s = model.time_to_finish_s()
        time.sleep(finish_s)
        model.advance(finish_s)
        return model.report()
