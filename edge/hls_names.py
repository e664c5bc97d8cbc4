"""What an HLS request path names: a reel and one of its files, or nothing valid.

The edge accepts exactly the file names the origin's ladder produces, so a malformed path is
refused (400) before it reaches the cache or the origin:

- `master.m3u8`                  the master playlist
- `<rung>.m3u8`                  a rendition playlist, e.g. `720p.m3u8`
- `<rung>_init.mp4`              a rendition's fMP4 initialisation segment
- `<rung>_<NNN>.m4s`             a media segment, e.g. `720p_003.m4s`

A rung is 1-16 ASCII letters or digits (`720p`, `1080p`, `audio`); a segment index has 1-6
digits. Reel ids are decimal uint64 values above zero without a sign or leading zeros.
"""

from __future__ import annotations

import enum
import re
from dataclasses import dataclass

from reelstream.request_limits import MAX_ID

_REEL_ID = re.compile(r"[1-9][0-9]{0,19}")
_PLAYLIST = re.compile(r"(?P<rung>[A-Za-z0-9]{1,16})\.m3u8")
_INIT = re.compile(r"(?P<rung>[A-Za-z0-9]{1,16})_init\.mp4")
_SEGMENT = re.compile(r"(?P<rung>[A-Za-z0-9]{1,16})_(?P<index>[0-9]{1,6})\.m4s")


class HlsFileKind(enum.Enum):
    MASTER = "master"
    RENDITION_PLAYLIST = "rendition"
    INIT_SEGMENT = "init"
    MEDIA_SEGMENT = "segment"

    @property
    def is_playlist(self) -> bool:
        return self in (HlsFileKind.MASTER, HlsFileKind.RENDITION_PLAYLIST)


@dataclass(frozen=True, slots=True)
class HlsObject:
    """One file of one reel, as the origin names it."""

    reel_id: int
    name: str
    kind: HlsFileKind
    rung: str = ""
    index: int = -1
    """Segment number of a media segment, -1 otherwise."""
    index_digits: int = 0
    """How many digits the segment number was written with (zero padding kept)."""

    @property
    def content_type(self) -> str:
        if self.kind.is_playlist:
            return "application/vnd.apple.mpegurl"
        if self.kind is HlsFileKind.INIT_SEGMENT:
            return "video/mp4"
        return "video/iso.segment"

    def next_segment(self) -> HlsObject | None:
        """The media segment after this one (same rung, same zero padding), if any."""
        if self.kind is not HlsFileKind.MEDIA_SEGMENT:
            return None
        index = self.index + 1
        digits = max(self.index_digits, len(str(index)))
        if digits > 6:
            return None
        return HlsObject(
            self.reel_id,
            f"{self.rung}_{index:0{digits}d}.m4s",
            HlsFileKind.MEDIA_SEGMENT,
            self.rung,
            index,
            self.index_digits,
        )


def parse_reel_id(text: str) -> int | None:
    """The reel id in `text`, or None unless it is a canonical integer in [1, 2^63)."""
    if not _REEL_ID.fullmatch(text):
        return None
    value = int(text)
    return value if value <= MAX_ID else None


def parse_hls_object(reel_id_text: str, name: str) -> HlsObject | None:
    """The file a request for `/reels/<reel_id_text>/<name>` names, or None if malformed."""
    reel_id = parse_reel_id(reel_id_text)
    if reel_id is None:
        return None
    if name == "master.m3u8":
        return HlsObject(reel_id, name, HlsFileKind.MASTER)
    if match := _SEGMENT.fullmatch(name):
        digits = match["index"]
        return HlsObject(
            reel_id, name, HlsFileKind.MEDIA_SEGMENT, match["rung"], int(digits), len(digits)
        )
    if match := _INIT.fullmatch(name):
        return HlsObject(reel_id, name, HlsFileKind.INIT_SEGMENT, match["rung"])
    if (match := _PLAYLIST.fullmatch(name)) and match["rung"] != "master":
        return HlsObject(reel_id, name, HlsFileKind.RENDITION_PLAYLIST, match["rung"])
    return None
