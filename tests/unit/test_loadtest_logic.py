"""The Locust suite's pure parts: playlists, load shapes, settings, edge choice, viewer draws.
(None of these import Locust, whose gevent patching must stay out of the test process.)"""

from __future__ import annotations

import random
from collections import Counter

import pytest

from loadtest.edge_resolver import by_latency
from loadtest.hls_playlist import PlaylistError, parse_attributes, parse_master, parse_media
from loadtest.load_settings import DEFAULT_WEIGHTS, load
from loadtest.playable_reels import PlayableReels
from loadtest.shape_profiles import LoadProfile
from loadtest.viewer_behaviour import ReelPicker, plan_watch
from reelstream.settings import ConfigError

MASTER = """#EXTM3U
#EXT-X-VERSION:7
#EXT-X-INDEPENDENT-SEGMENTS
#EXT-X-STREAM-INF:BANDWIDTH=2970000,AVERAGE-BANDWIDTH=2600000,RESOLUTION=720x1280,CODECS="avc1.64001f,mp4a.40.2"
720p.m3u8
#EXT-X-STREAM-INF:BANDWIDTH=715000,RESOLUTION=360x640,CODECS="avc1.64001e,mp4a.40.2"
360p.m3u8
"""
MEDIA = """#EXTM3U
#EXT-X-VERSION:7
#EXT-X-TARGETDURATION:2
#EXT-X-PLAYLIST-TYPE:VOD
#EXT-X-MAP:URI="720p_init.mp4"
#EXTINF:2.000000,
720p_000.m4s
#EXTINF:1.500000,
720p_001.m4s
#EXT-X-ENDLIST
"""


def test_master_playlist_lists_variants_lowest_first_with_absolute_uris() -> None:
    variants = parse_master(MASTER, "http://127.0.0.1:8080/reels/7/master.m3u8")
    assert [v.uri for v in variants] == [
        "http://127.0.0.1:8080/reels/7/360p.m3u8",
        "http://127.0.0.1:8080/reels/7/720p.m3u8",
    ]
    assert [v.bitrate_bps for v in variants] == [715_000, 2_600_000]
    assert variants[1].resolution == "720x1280"


def test_media_playlist_gives_init_section_segments_and_durations() -> None:
    playlist = parse_media(MEDIA, "http://h/reels/7/720p.m3u8")
    assert playlist.init_uri == "http://h/reels/7/720p_init.mp4"
    assert playlist.segment_uris == [
        "http://h/reels/7/720p_000.m4s",
        "http://h/reels/7/720p_001.m4s",
    ]
    assert playlist.durations_s == [2.0, 1.5]


def test_quoted_attribute_values_may_hold_commas() -> None:
    assert parse_attributes('BANDWIDTH=1,CODECS="a,b",RESOLUTION=1x2') == {
        "BANDWIDTH": "1",
        "CODECS": "a,b",
        "RESOLUTION": "1x2",
    }


@pytest.mark.parametrize("text", ["", "<html>404</html>", "#EXTM3U\n#EXT-X-VERSION:7\n"])
def test_a_page_that_is_not_a_playlist_is_refused(text: str) -> None:
    with pytest.raises(PlaylistError):
        parse_master(text, "http://h/")


def test_every_shape_ends_with_its_duration_and_stays_within_the_peak() -> None:
    for name in ("steady", "ramp", "spike", "diurnal"):
        profile = LoadProfile(name, peak_users=100, duration_s=60, spawn_rate=10)
        users = [tick.users for t in range(60) if (tick := profile.at(t)) is not None]
        assert len(users) == 60
        assert profile.at(60) is None
        assert min(users) >= 1
        assert max(users) <= 100


def test_spike_jumps_to_the_peak_at_once_and_falls_back() -> None:
    profile = LoadProfile("spike", peak_users=80, duration_s=100, spawn_rate=5)
    assert [profile.at(t).users for t in (10, 45, 70)] == [20, 80, 20]  # type: ignore[union-attr]
    assert profile.at(45).spawn_rate == 80  # type: ignore[union-attr]


def test_ramp_grows_and_diurnal_has_a_night_and_an_evening() -> None:
    ramp = LoadProfile("ramp", peak_users=50, duration_s=100, spawn_rate=5)
    assert [ramp.at(t).users for t in (0, 40, 80, 99)] == [1, 25, 50, 50]  # type: ignore[union-attr]
    day = LoadProfile("diurnal", peak_users=50, duration_s=100, spawn_rate=5)
    assert day.at(0).users == 10  # type: ignore[union-attr]
    assert day.at(50).users == 50  # type: ignore[union-attr]


def test_weights_default_to_the_merged_features_and_take_overrides() -> None:
    assert load({}).weight_table() == DEFAULT_WEIGHTS
    # The video path is merged: players and creators are on; moderation (issue 6) is not.
    assert DEFAULT_WEIGHTS["player_viewer"] > 0
    assert DEFAULT_WEIGHTS["creator"] > 0
    assert DEFAULT_WEIGHTS["reporter"] == DEFAULT_WEIGHTS["moderator"] == 0
    table = load({"REELSTREAM_LOADTEST_WEIGHTS": "viewer=3, creator=0"}).weight_table()
    assert table["viewer"] == 3
    assert table["creator"] == 0


def test_playable_reels_start_empty_and_grow_with_published_reels() -> None:
    reels = PlayableReels()
    rng = random.Random(1)
    assert reels.pick(rng) is None
    assert not reels.wait_any(0.0)
    reels.add(41)
    reels.add(42)
    reels.add(41)  # a reel published twice is one reel
    assert len(reels) == 2
    assert 42 in reels
    assert 7 not in reels
    assert reels.wait_any(0.0)
    picks = Counter(reels.pick(rng) for _ in range(3_000))
    # Zipf(1) in arrival order: the first reel is drawn about twice as often as the second.
    assert set(picks) == {41, 42}
    assert 1.6 < picks[41] / picks[42] < 2.4


def test_configured_media_reels_are_playable_from_the_start() -> None:
    settings = load({"REELSTREAM_LOADTEST_MEDIA_REEL_IDS": "5,6"})
    reels = PlayableReels(settings.media_reel_ids)
    assert reels.wait_any(0.0)
    rng = random.Random(2)
    assert {reels.pick(rng) for _ in range(50)} == {5, 6}


@pytest.mark.parametrize("weights", ["viewers=3", "viewer", "viewer=-1", "viewer=x"])
def test_a_bad_weight_fails_at_start_up(weights: str) -> None:
    with pytest.raises(ConfigError):
        load({"REELSTREAM_LOADTEST_WEIGHTS": weights})


def test_http_edges_follow_the_grpc_edges_by_index() -> None:
    assert load({}).http_edge(1) == "http://127.0.0.1:8081"
    custom = load({"REELSTREAM_LOADTEST_HTTP_EDGES": "http://a:1/,http://b:2"})
    assert custom.http_edge(0) == "http://a:1"


def test_nearest_edge_first_and_silent_edges_last() -> None:
    order = by_latency({"a": [0.004, 0.003], "b": [None, None], "c": [0.001, None], "d": []})
    assert order == ["c", "a", "b", "d"]


def test_reel_popularity_is_zipf_like() -> None:
    picker = ReelPicker(range(1, 1001))
    rng = random.Random(7)
    counts = Counter(picker.pick(rng) for _ in range(50_000))
    assert counts[1] > 1.6 * counts[2] > counts[10]
    assert counts[1] / 50_000 == pytest.approx(1 / sum(1 / k for k in range(1, 1001)), rel=0.1)


def test_watch_mix_has_swipes_full_watches_and_likes_only_after_a_real_view() -> None:
    rng = random.Random(3)
    plans = [plan_watch(rng, 20_000, like_probability=0.5) for _ in range(10_000)]
    swipes = sum(p.watch_ms < 3_000 for p in plans) / len(plans)
    full = sum(p.watch_ms == 20_000 for p in plans) / len(plans)
    assert 0.2 < swipes < 0.3
    assert 0.2 < full < 0.3
    assert all(p.watch_ms >= 3_000 for p in plans if p.like)
