"""Master playlist rewrite: BANDWIDTH is the peak and AVERAGE-BANDWIDTH the mean segment bit
rate measured from the files; CODECS, RESOLUTION, FRAME-RATE are present."""

from __future__ import annotations

from fractions import Fraction

import pytest

from origin.hls_master import (
    RungBitrate,
    VariantEntry,
    codecs_by_playlist,
    measure_bitrate,
    parse_media_playlist,
    render_master,
)

PLAYLIST = """#EXTM3U
#EXT-X-VERSION:7
#EXT-X-TARGETDURATION:2
#EXT-X-MEDIA-SEQUENCE:0
#EXT-X-PLAYLIST-TYPE:VOD
#EXT-X-INDEPENDENT-SEGMENTS
#EXT-X-MAP:URI="360p_init.mp4"
#EXTINF:2.000000,
360p_000.m4s
#EXTINF:2.000000,
360p_001.m4s
#EXTINF:0.500000,
360p_002.m4s
#EXT-X-ENDLIST
"""

FFMPEG_MASTER = """#EXTM3U
#EXT-X-VERSION:7
#EXT-X-STREAM-INF:BANDWIDTH=765600,RESOLUTION=360x640,CODECS="avc1.64001e,mp4a.40.2"
360p.m3u8

#EXT-X-STREAM-INF:BANDWIDTH=400400,RESOLUTION=240x426,CODECS="avc1.640015,mp4a.40.2"
240p.m3u8
"""


def test_a_media_playlist_is_read_with_init_segments_and_durations() -> None:
    playlist = parse_media_playlist(PLAYLIST)
    assert playlist.init_uri == "360p_init.mp4"
    assert [(s.uri, s.duration_s) for s in playlist.segments] == [
        ("360p_000.m4s", 2.0),
        ("360p_001.m4s", 2.0),
        ("360p_002.m4s", 0.5),
    ]
    assert playlist.ended


def test_peak_and_average_come_from_segment_sizes() -> None:
    playlist = parse_media_playlist(PLAYLIST)
    sizes = {"360p_000.m4s": 100_000, "360p_001.m4s": 150_000, "360p_002.m4s": 60_000}
    measured = measure_bitrate(playlist, sizes)
    # The 0.5 s tail (960 kbit/s) is left out of the peak but counts in the average.
    assert measured.peak_bps == 600_000
    assert measured.average_bps == (310_000 * 8 * 10 + 44) // 45  # ceil(2,480,000 / 4.5)


def test_a_single_short_segment_still_has_a_peak() -> None:
    playlist = parse_media_playlist("#EXTM3U\n#EXTINF:0.5,\n240p_000.m4s\n#EXT-X-ENDLIST\n")
    assert measure_bitrate(playlist, {"240p_000.m4s": 1000}) == RungBitrate(16_000, 16_000)


def test_malformed_playlists_are_refused() -> None:
    with pytest.raises(ValueError, match="m3u8"):
        parse_media_playlist("hello")
    with pytest.raises(ValueError, match="EXTINF"):
        parse_media_playlist("#EXTM3U\n#EXTINF:2,\n")
    with pytest.raises(ValueError, match="without segments"):
        measure_bitrate(parse_media_playlist("#EXTM3U\n"), {})


def test_codecs_are_taken_from_ffmpegs_master_by_variant_uri() -> None:
    assert codecs_by_playlist(FFMPEG_MASTER) == {
        "360p.m3u8": "avc1.64001e,mp4a.40.2",
        "240p.m3u8": "avc1.640015,mp4a.40.2",
    }


def test_the_master_carries_every_measured_attribute() -> None:
    master = render_master(
        [
            VariantEntry(
                "360p.m3u8",
                360,
                640,
                Fraction(30000, 1001),
                "avc1.64001e,mp4a.40.2",
                RungBitrate(700_001, 500_002),
            ),
            VariantEntry("240p.m3u8", 240, 426, Fraction(30), "avc1.640015", RungBitrate(3, 2)),
        ]
    )
    assert master == (
        "#EXTM3U\n#EXT-X-VERSION:7\n#EXT-X-INDEPENDENT-SEGMENTS\n"
        "#EXT-X-STREAM-INF:BANDWIDTH=700001,AVERAGE-BANDWIDTH=500002,"
        'CODECS="avc1.64001e,mp4a.40.2",RESOLUTION=360x640,FRAME-RATE=29.970\n'
        "360p.m3u8\n"
        '#EXT-X-STREAM-INF:BANDWIDTH=3,AVERAGE-BANDWIDTH=2,CODECS="avc1.640015",'
        "RESOLUTION=240x426,FRAME-RATE=30.000\n"
        "240p.m3u8\n"
    )
