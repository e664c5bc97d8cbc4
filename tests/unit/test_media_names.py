"""Names edges may ask for: a strict whitelist, so no request can leave a reel's folder."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from origin.media_names import is_manifest_name, is_segment_name


@pytest.mark.parametrize("name", ["master.m3u8", "720p.m3u8", "1080p.m3u8", "178p.m3u8"])
def test_playlist_names_are_accepted(name: str) -> None:
    assert is_manifest_name(name)
    assert not is_segment_name(name)


@pytest.mark.parametrize(
    "name", ["720p_init.mp4", "720p_000.m4s", "240p_089.m4s", "1080p_12345.m4s"]
)
def test_segment_names_are_accepted(name: str) -> None:
    assert is_segment_name(name)
    assert not is_manifest_name(name)


@pytest.mark.parametrize(
    "name",
    [
        "",
        "../master.m3u8",
        "master.m3u8/..",
        "/etc/passwd",
        "720p/../../x.m4s",
        "720p_000.m4s\x00",
        "720p_000.m4s\n",
        "720p_1.m4s",
        "p_000.m4s",
        "0720p_000.m4s",
        "720p_init.mp4.tmp",
        "poster.jpg",
        "renditions.json",
        "MASTER.m3u8",
        "720P_000.m4s",
    ],
)
def test_everything_else_is_refused(name: str) -> None:
    assert not is_manifest_name(name)
    assert not is_segment_name(name)


@given(st.text(max_size=40))
def test_no_accepted_name_contains_a_path_separator_or_parent(name: str) -> None:
    if is_manifest_name(name) or is_segment_name(name):
        assert "/" not in name
        assert ".." not in name
        assert "\\" not in name
        assert "\x00" not in name
