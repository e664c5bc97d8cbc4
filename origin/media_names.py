"""Names of a reel's HLS files and the strict whitelist that guards every name a caller sends.

Layout of one reel's media folder (edges rely on exactly these names; URIs inside playlists
are relative):
- `master.m3u8`            the master playlist (measured BANDWIDTH, AVERAGE-BANDWIDTH, ...)
- `<rung>.m3u8`            a rendition playlist, e.g. `720p.m3u8`
- `<rung>_init.mp4`        the rendition's fMP4 initialisation segment
- `<rung>_<NNN>.m4s`       a media segment, e.g. `720p_003.m4s` (3 digits or more)
- `poster.jpg`, `keyframe_<NN>.jpg`   stills for thumbnails and moderation (not served)
- `renditions.json`       the measured renditions (written last: its presence marks a
                           complete folder)

A caller's name is accepted only when it matches one of these regexes in full: no slashes,
no dots beyond the extension, so no path can leave the folder.
"""

from __future__ import annotations

import re

MASTER_PLAYLIST = "master.m3u8"
POSTER = "poster.jpg"
RENDITIONS_FILE = "renditions.json"
PLAYLIST_CONTENT_TYPE = "application/vnd.apple.mpegurl"

_RUNG = r"[1-9][0-9]{1,3}p"
_MANIFEST = re.compile(rf"(?:master|{_RUNG})\.m3u8")
_SEGMENT = re.compile(rf"{_RUNG}_(?:init\.mp4|[0-9]{{3,5}}\.m4s)")
_RUNG_NAME = re.compile(_RUNG)


def is_manifest_name(name: str) -> bool:
    """True for `master.m3u8` and rendition playlists such as `720p.m3u8`."""
    return _MANIFEST.fullmatch(name) is not None


def is_segment_name(name: str) -> bool:
    """True for init segments (`720p_init.mp4`) and media segments (`720p_003.m4s`)."""
    return _SEGMENT.fullmatch(name) is not None


def is_rung_name(name: str) -> bool:
    return _RUNG_NAME.fullmatch(name) is not None


def rung_playlist(rung: str) -> str:
    return f"{rung}.m3u8"


def keyframe_name(index: int) -> str:
    return f"keyframe_{index:02d}.jpg"
