"""Just enough HLS (RFC 8216) parsing for the player model: variants of a master playlist,
segments of a media playlist. Pure code; URIs are resolved against the playlist's URL."""

from __future__ import annotations

from dataclasses import dataclass
from urllib.parse import urljoin


class PlaylistError(ValueError):
    """The text is not a playlist the player can use."""


@dataclass(frozen=True)
class Variant:
    """One rung of the ladder (an EXT-X-STREAM-INF entry)."""

    uri: str
    bandwidth_bps: int
    average_bandwidth_bps: int | None
    resolution: str | None

    @property
    def bitrate_bps(self) -> int:
        """The rate the player plans with: AVERAGE-BANDWIDTH when given, else BANDWIDTH."""
        return self.average_bandwidth_bps or self.bandwidth_bps


@dataclass(frozen=True)
class MediaPlaylist:
    init_uri: str | None
    segment_uris: list[str]
    durations_s: list[float]


def parse_attributes(text: str) -> dict[str, str]:
    """`KEY=value,KEY="quoted, value"` into a dict (quotes removed)."""
    attributes: dict[str, str] = {}
    index = 0
    while index < len(text):
        equals = text.find("=", index)
        if equals < 0:
            break
        key = text[index:equals].strip()
        if equals + 1 < len(text) and text[equals + 1] == '"':
            end = text.find('"', equals + 2)
            if end < 0:
                raise PlaylistError(f"unterminated quoted value of {key}")
            attributes[key] = text[equals + 2 : end]
            index = end + 2  # past the quote and the comma
        else:
            comma = text.find(",", equals)
            end = len(text) if comma < 0 else comma
            attributes[key] = text[equals + 1 : end].strip()
            index = end + 1
    return attributes


def _lines(text: str) -> list[str]:
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    if not lines or lines[0] != "#EXTM3U":
        raise PlaylistError("missing #EXTM3U header")
    return lines


def parse_master(text: str, base_url: str) -> list[Variant]:
    """The variants of a master playlist, lowest bitrate first."""
    variants: list[Variant] = []
    pending: dict[str, str] | None = None
    for line in _lines(text):
        if line.startswith("#EXT-X-STREAM-INF:"):
            pending = parse_attributes(line.split(":", 1)[1])
        elif not line.startswith("#") and pending is not None:
            try:
                bandwidth = int(pending["BANDWIDTH"])
            except (KeyError, ValueError) as exc:
                raise PlaylistError(f"variant {line} without a valid BANDWIDTH") from exc
            average = pending.get("AVERAGE-BANDWIDTH")
            variants.append(
                Variant(
                    uri=urljoin(base_url, line),
                    bandwidth_bps=bandwidth,
                    average_bandwidth_bps=int(average) if average else None,
                    resolution=pending.get("RESOLUTION"),
                )
            )
            pending = None
    if not variants:
        raise PlaylistError("master playlist lists no variant")
    return sorted(variants, key=lambda v: v.bitrate_bps)


def parse_media(text: str, base_url: str) -> MediaPlaylist:
    """Init section and segments of a media playlist."""
    init_uri: str | None = None
    uris: list[str] = []
    durations: list[float] = []
    pending_duration: float | None = None
    for line in _lines(text):
        if line.startswith("#EXT-X-MAP:"):
            init_uri = urljoin(base_url, parse_attributes(line.split(":", 1)[1])["URI"])
        elif line.startswith("#EXTINF:"):
            try:
                pending_duration = float(line.split(":", 1)[1].split(",", 1)[0])
            except ValueError as exc:
                raise PlaylistError(f"bad duration in {line}") from exc
        elif not line.startswith("#") and pending_duration is not None:
            uris.append(urljoin(base_url, line))
            durations.append(pending_duration)
            pending_duration = None
    if not uris:
        raise PlaylistError("media playlist lists no segment")
    return MediaPlaylist(init_uri, uris, durations)
