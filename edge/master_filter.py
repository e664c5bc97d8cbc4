"""A master playlist cut to one player's device and network, ordered for a cold start.

Which rungs are offered (at least the lowest one always survives, so every player can play):
- `max_height`: rungs taller than the cap are dropped (explicit request: a hard cap);
- viewport height (device pixels): rungs above the smallest rung that covers the viewport
  are dropped: bigger ones would be downscaled, wasting bits;
- save-data: only rungs whose average bit rate fits `save_data_bps`;
- downlink: only rungs whose average bit rate fits the client's estimate.

Order: RFC 8216 (4.3.4.2) and Apple's authoring spec make the first variant the one a
player such as AVPlayer starts with; hls.js starts from its own estimate (500 kbps by
default, shared/notes/video.md) and climbs. So the first variant listed is the highest rung
whose average bit rate fits the cold-start budget (`cold_start_bps`, lowered to 70% of a
client's downlink estimate when it sent one: hls.js switches up only with that margin),
and the rest follow in ascending bit rate: a player on a slow network starts quickly on a
modest rung instead of stalling on the top one, and a fast one climbs within a segment or
two. Other tags (version, independent segments, audio renditions) are kept as they are.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from edge.device_hints import PlaybackCaps

_ATTRIBUTE = re.compile(r'([A-Z0-9-]+)=("[^"]*"|[^,]*)')
STREAM_INF = "#EXT-X-STREAM-INF:"
UP_SWITCH_MARGIN = 0.7
"""hls.js's abrBandWidthUpFactor: the share of an estimate it dares to spend."""


@dataclass(frozen=True, slots=True)
class Variant:
    """One `#EXT-X-STREAM-INF` entry and its URI line."""

    tag: str
    uri: str
    bandwidth: int
    average_bandwidth: int
    height: int


@dataclass(frozen=True, slots=True)
class MasterPlaylist:
    header: list[str]
    """Every line except variants, in order."""
    variants: list[Variant]


def _attributes(tag: str) -> dict[str, str]:
    return {m[1]: m[2].strip('"') for m in _ATTRIBUTE.finditer(tag[len(STREAM_INF) :])}


def _int(text: str | None) -> int:
    return int(text) if text is not None and text.isdigit() else 0


def parse_master(text: str) -> MasterPlaylist:
    """Splits a master playlist into its variants and everything else."""
    header: list[str] = []
    variants: list[Variant] = []
    lines = [line.strip() for line in text.splitlines()]
    index = 0
    while index < len(lines):
        line = lines[index]
        index += 1
        if not line:
            continue
        if not line.startswith(STREAM_INF):
            header.append(line)
            continue
        uri = ""
        while index < len(lines) and not uri:
            candidate = lines[index]
            index += 1
            if candidate and not candidate.startswith("#"):
                uri = candidate
        if not uri:
            break  # a dangling tag: ignore it
        attributes = _attributes(line)
        bandwidth = _int(attributes.get("BANDWIDTH"))
        resolution = attributes.get("RESOLUTION", "")
        height = _int(resolution.partition("x")[2]) if "x" in resolution else 0
        average = _int(attributes.get("AVERAGE-BANDWIDTH")) or bandwidth
        variants.append(Variant(line, uri, bandwidth, average, height))
    return MasterPlaylist(header, variants)


def _offered(variants: list[Variant], caps: PlaybackCaps, save_data_bps: int) -> list[Variant]:
    by_rate = sorted(variants, key=lambda v: (v.average_bandwidth, v.height))
    lowest = by_rate[0]
    kept = by_rate
    if caps.max_height is not None:
        cap = caps.max_height
        kept = [v for v in kept if v.height <= cap]
    if caps.viewport_height_px is not None:
        covering = [v.height for v in variants if v.height >= caps.viewport_height_px]
        if covering:
            cover = min(covering)
            kept = [v for v in kept if v.height <= cover]
    if caps.save_data:
        kept = [v for v in kept if v.average_bandwidth <= save_data_bps]
    if caps.downlink_bps is not None:
        downlink = caps.downlink_bps
        kept = [v for v in kept if v.average_bandwidth <= downlink]
    return kept or [lowest]


def _cold_start_first(offered: list[Variant], budget_bps: int) -> list[Variant]:
    fitting = [v for v in offered if v.average_bandwidth <= budget_bps]
    first = fitting[-1] if fitting else offered[0]
    return [first, *(v for v in offered if v is not first)]


def filter_master(text: str, caps: PlaybackCaps, *, cold_start_bps: int, save_data_bps: int) -> str:
    """The master playlist `text` as offered to a player with `caps` (see module doc)."""
    master = parse_master(text)
    if not master.variants:
        return text
    offered = _offered(master.variants, caps, save_data_bps)
    budget = cold_start_bps
    if caps.downlink_bps is not None:
        budget = min(budget, int(caps.downlink_bps * UP_SWITCH_MARGIN))
    ordered = _cold_start_first(offered, budget)
    lines = list(master.header)
    for variant in ordered:
        lines.extend((variant.tag, variant.uri))
    return "\n".join(lines) + "\n"
