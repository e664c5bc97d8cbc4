"""What a player's request says about its screen and network, for the master playlist.

Two sources, both optional:
- query parameters the app sets explicitly: `max_height` (pixels, a hard cap),
  `save_data` (`1`/`true`/`on`), `downlink_kbps`;
- client hints browsers send (after `Accept-CH`): `Save-Data: on`, `Sec-CH-Viewport-Height`
  or `Viewport-Height` (CSS pixels), `Sec-CH-DPR`/`DPR` (device pixels per CSS pixel) and
  `Downlink` (Mbps, the browser's estimate).

A malformed query parameter is the caller's bug and is refused (400); a malformed hint
header is ignored, since hints are advisory and proxies may mangle them.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass

MAX_PIXELS = 16_384
MAX_DOWNLINK_KBPS = 10_000_000

CLIENT_HINT_HEADERS = (
    "Save-Data",
    "Sec-CH-Viewport-Height",
    "Viewport-Height",
    "Sec-CH-DPR",
    "DPR",
    "Downlink",
)
"""Headers a device-aware master varies on (sent as `Vary` and asked for by `Accept-CH`)."""


class MalformedHint(ValueError):
    """A query parameter of the master request is not a valid value."""


@dataclass(frozen=True, slots=True)
class PlaybackCaps:
    """Limits on the renditions worth offering one player."""

    max_height: int | None = None
    """Hard cap on the rendition height (explicit request of the app)."""
    viewport_height_px: int | None = None
    """Device pixels of the viewport height: rungs above the first one covering it are
    wasted bits."""
    save_data: bool = False
    downlink_bps: int | None = None
    """The client's bandwidth estimate."""


def _query_int(query: Mapping[str, str], name: str, upper: int) -> int | None:
    raw = query.get(name)
    if raw is None:
        return None
    if not raw.isascii() or not raw.isdigit() or len(raw) > 9 or not 0 < int(raw) <= upper:
        raise MalformedHint(f"{name} must be an integer in 1..{upper}, got {raw!r}")
    return int(raw)


def _query_flag(query: Mapping[str, str], name: str) -> bool:
    raw = query.get(name)
    if raw is None:
        return False
    value = raw.strip().lower()
    if value in ("1", "true", "on", "yes"):
        return True
    if value in ("0", "false", "off", "no"):
        return False
    raise MalformedHint(f"{name} must be a boolean (1/0, true/false, on/off), got {raw!r}")


def _header_float(headers: Mapping[str, str], *names: str) -> float | None:
    for name in names:
        raw = headers.get(name)
        if raw is None:
            continue
        try:
            value = float(raw.strip())
        except ValueError:
            continue
        if math.isfinite(value) and value > 0:
            return value
    return None


def caps_from_request(query: Mapping[str, str], headers: Mapping[str, str]) -> PlaybackCaps:
    """The caps a master request asks for (headers looked up case-insensitively by the
    caller's mapping, as aiohttp's are).

    Raises:
        MalformedHint: a query parameter is malformed.
    """
    max_height = _query_int(query, "max_height", MAX_PIXELS)
    save_data = _query_flag(query, "save_data") or (
        headers.get("Save-Data", "").strip().lower() == "on"
    )
    downlink_kbps = _query_int(query, "downlink_kbps", MAX_DOWNLINK_KBPS)
    downlink_bps = downlink_kbps * 1000 if downlink_kbps is not None else None
    if downlink_bps is None:
        mbps = _header_float(headers, "Downlink")
        if mbps is not None:
            downlink_bps = int(min(mbps, MAX_DOWNLINK_KBPS / 1000) * 1_000_000)
    viewport_px: int | None = None
    css_height = _header_float(headers, "Sec-CH-Viewport-Height", "Viewport-Height")
    if css_height is not None:
        dpr = min(_header_float(headers, "Sec-CH-DPR", "DPR") or 1.0, 8.0)
        viewport_px = min(math.ceil(css_height * dpr), MAX_PIXELS)
    return PlaybackCaps(max_height, viewport_px, save_data, downlink_bps)
