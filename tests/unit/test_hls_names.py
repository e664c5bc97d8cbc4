"""Which request paths name a reel file, and which are refused as malformed."""

from __future__ import annotations

import pytest

from edge.hls_names import HlsFileKind, parse_hls_object, parse_reel_id


@pytest.mark.parametrize(
    ("name", "kind", "rung", "index"),
    [
        ("master.m3u8", HlsFileKind.MASTER, "", -1),
        ("720p.m3u8", HlsFileKind.RENDITION_PLAYLIST, "720p", -1),
        ("1080p_init.mp4", HlsFileKind.INIT_SEGMENT, "1080p", -1),
        ("360p_007.m4s", HlsFileKind.MEDIA_SEGMENT, "360p", 7),
        ("240p_0.m4s", HlsFileKind.MEDIA_SEGMENT, "240p", 0),
    ],
)
def test_origin_file_names_are_recognised(
    name: str, kind: HlsFileKind, rung: str, index: int
) -> None:
    obj = parse_hls_object("42", name)
    assert obj is not None
    assert (obj.reel_id, obj.name, obj.kind, obj.rung, obj.index) == (42, name, kind, rung, index)


@pytest.mark.parametrize(
    "name",
    [
        "",
        "../etc/passwd",
        "720p/../../x.m4s",
        "720p.m3u8/",
        "720p_001.ts",
        "720p_-1.m4s",
        "720p_1234567.m4s",
        "a" * 17 + ".m3u8",
        "720p .m3u8",
        "720p.m3u8\n",
        "72%2fp.m3u8",
        "720p_init.m4s",
        "\u0667\u0662\u0660p.m3u8",
    ],
)
def test_malformed_file_names_are_refused(name: str) -> None:
    assert parse_hls_object("42", name) is None


@pytest.mark.parametrize(
    "text",
    ["", "0", "-1", "+1", "01", "1.0", "abc", " 1", "9223372036854775808", "\u0661"],
)
def test_malformed_reel_ids_are_refused(text: str) -> None:
    assert parse_reel_id(text) is None


def test_reel_ids_span_what_the_catalog_holds() -> None:
    """Cassandra's bigint is signed: ids are in [1, 2^63), as at every gRPC boundary."""
    assert parse_reel_id("9223372036854775807") == 2**63 - 1
    assert parse_reel_id("9223372036854775808") is None


def test_the_next_segment_keeps_the_zero_padding() -> None:
    obj = parse_hls_object("9", "720p_009.m4s")
    assert obj is not None
    following = obj.next_segment()
    assert following is not None
    assert following.name == "720p_010.m4s"
    assert following.next_segment() is not None
    init = parse_hls_object("9", "720p_init.mp4")
    assert init is not None
    assert init.next_segment() is None
