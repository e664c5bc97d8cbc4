"""The device- and network-aware master: which rungs are offered, and in which order."""

from __future__ import annotations

import pytest

from edge.device_hints import MalformedHint, PlaybackCaps, caps_from_request
from edge.master_filter import filter_master, parse_master

MASTER = """#EXTM3U
#EXT-X-VERSION:7
#EXT-X-INDEPENDENT-SEGMENTS
#EXT-X-STREAM-INF:BANDWIDTH=5200000,AVERAGE-BANDWIDTH=4500000,RESOLUTION=1080x1920,CODECS="avc1.640028,mp4a.40.2",FRAME-RATE=30.000
1080p.m3u8
#EXT-X-STREAM-INF:BANDWIDTH=2900000,AVERAGE-BANDWIDTH=2500000,RESOLUTION=720x1280,CODECS="avc1.64001f,mp4a.40.2",FRAME-RATE=30.000
720p.m3u8
#EXT-X-STREAM-INF:BANDWIDTH=1300000,AVERAGE-BANDWIDTH=1100000,RESOLUTION=480x854,CODECS="avc1.64001e,mp4a.40.2",FRAME-RATE=30.000
480p.m3u8
#EXT-X-STREAM-INF:BANDWIDTH=700000,AVERAGE-BANDWIDTH=600000,RESOLUTION=360x640,CODECS="avc1.64001e,mp4a.40.2",FRAME-RATE=30.000
360p.m3u8
#EXT-X-STREAM-INF:BANDWIDTH=350000,AVERAGE-BANDWIDTH=300000,RESOLUTION=240x426,CODECS="avc1.640015,mp4a.40.2",FRAME-RATE=30.000
240p.m3u8
"""


def offered(caps: PlaybackCaps, cold_start_bps: int = 1_000_000) -> list[str]:
    text = filter_master(MASTER, caps, cold_start_bps=cold_start_bps, save_data_bps=800_000)
    return [line for line in text.splitlines() if line and not line.startswith("#")]


def test_parsing_reads_bandwidth_and_height_with_quoted_commas() -> None:
    master = parse_master(MASTER)
    assert [v.uri for v in master.variants][:2] == ["1080p.m3u8", "720p.m3u8"]
    assert master.variants[0].bandwidth == 5_200_000
    assert master.variants[0].average_bandwidth == 4_500_000
    assert master.variants[0].height == 1920
    assert master.header == ["#EXTM3U", "#EXT-X-VERSION:7", "#EXT-X-INDEPENDENT-SEGMENTS"]


def test_without_hints_every_rung_is_offered_starting_at_the_cold_start_rung() -> None:
    assert offered(PlaybackCaps()) == [
        "360p.m3u8",
        "240p.m3u8",
        "480p.m3u8",
        "720p.m3u8",
        "1080p.m3u8",
    ]


def test_tags_stay_with_their_uri_and_header_lines_are_kept() -> None:
    text = filter_master(MASTER, PlaybackCaps(), cold_start_bps=1_000_000, save_data_bps=1)
    lines = text.splitlines()
    assert lines[:3] == ["#EXTM3U", "#EXT-X-VERSION:7", "#EXT-X-INDEPENDENT-SEGMENTS"]
    assert "RESOLUTION=360x640" in lines[3]
    assert lines[4] == "360p.m3u8"


def test_max_height_is_a_hard_cap() -> None:
    assert sorted(offered(PlaybackCaps(max_height=1280))) == [
        "240p.m3u8",
        "360p.m3u8",
        "480p.m3u8",
        "720p.m3u8",
    ]


def test_a_cap_below_every_rung_still_offers_the_lowest() -> None:
    assert offered(PlaybackCaps(max_height=100)) == ["240p.m3u8"]


def test_viewport_keeps_the_first_rung_covering_it() -> None:
    # 700 device pixels tall: 854 covers it, 1280 and 1920 would be downscaled.
    assert sorted(offered(PlaybackCaps(viewport_height_px=700))) == [
        "240p.m3u8",
        "360p.m3u8",
        "480p.m3u8",
    ]


def test_save_data_keeps_only_cheap_rungs() -> None:
    assert sorted(offered(PlaybackCaps(save_data=True))) == ["240p.m3u8", "360p.m3u8"]


def test_a_slow_downlink_drops_rungs_and_lowers_the_start() -> None:
    # 1.5 Mbps: 720p and 1080p cannot play; start at 360p (70% of 1.5 Mbps fits 600 kbps).
    assert offered(PlaybackCaps(downlink_bps=1_500_000)) == [
        "360p.m3u8",
        "240p.m3u8",
        "480p.m3u8",
    ]
    assert offered(PlaybackCaps(downlink_bps=3_000_000), cold_start_bps=5_000_000)[0] == (
        "480p.m3u8"
    )
    assert offered(PlaybackCaps(downlink_bps=500_000))[0] == "240p.m3u8"


def test_a_master_without_variants_is_passed_through() -> None:
    text = "#EXTM3U\n#EXT-X-VERSION:7\n"
    assert filter_master(text, PlaybackCaps(), cold_start_bps=1, save_data_bps=1) == text


def test_query_and_client_hints_become_caps() -> None:
    caps = caps_from_request(
        {"max_height": "720"},
        {"Save-Data": "on", "Sec-CH-Viewport-Height": "400", "Sec-CH-DPR": "2", "Downlink": "1.5"},
    )
    assert caps == PlaybackCaps(
        max_height=720, viewport_height_px=800, save_data=True, downlink_bps=1_500_000
    )


def test_save_data_query_and_downlink_query_override_headers() -> None:
    caps = caps_from_request({"save_data": "1", "downlink_kbps": "900"}, {"Downlink": "10"})
    assert caps.save_data
    assert caps.downlink_bps == 900_000


def test_malformed_hint_headers_are_ignored() -> None:
    caps = caps_from_request({}, {"Downlink": "fast", "Viewport-Height": "-3", "DPR": "nan"})
    assert caps == PlaybackCaps()


@pytest.mark.parametrize(
    "query",
    [
        {"max_height": "abc"},
        {"max_height": "0"},
        {"max_height": "-1"},
        {"max_height": "99999"},
        {"save_data": "maybe"},
        {"downlink_kbps": "1e3"},
    ],
)
def test_malformed_query_parameters_are_refused(query: dict[str, str]) -> None:
    with pytest.raises(MalformedHint):
        caps_from_request(query, {})
