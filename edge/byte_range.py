"""HTTP Range header parsing for single byte ranges (RFC 9110 section 14).

Players ask for one range at a time (hls.js and ffmpeg for byte-range playlists, Safari to
probe with `bytes=0-1`). A header the edge does not serve as a range is ignored, which RFC
9110 allows: the whole object is sent with 200. That covers other units, syntax errors,
descending ranges and multi-range requests (multipart/byteranges is not worth its cost
here). A well-formed range that starts past the end is unsatisfiable (416).
"""

from __future__ import annotations

import re
from dataclasses import dataclass

_SINGLE = re.compile(r"\s*bytes\s*=\s*([0-9]{0,19})\s*-\s*([0-9]{0,19})\s*", re.IGNORECASE)


@dataclass(frozen=True, slots=True)
class ByteRange:
    """Bytes `start` to `end`, both included, of an object of `size` bytes."""

    start: int
    end: int
    size: int

    @property
    def length(self) -> int:
        return self.end - self.start + 1

    @property
    def content_range(self) -> str:
        return f"bytes {self.start}-{self.end}/{self.size}"


@dataclass(frozen=True, slots=True)
class Unsatisfiable:
    """A valid range outside the object: answered with 416 and `bytes */size`."""

    size: int

    @property
    def content_range(self) -> str:
        return f"bytes */{self.size}"


def parse_range(header: str | None, size: int) -> ByteRange | Unsatisfiable | None:
    """The range `header` asks of an object of `size` bytes.

    Returns None when the whole object should be sent (no header, or one ignored as
    explained in the module docstring).
    """
    if header is None:
        return None
    match = _SINGLE.fullmatch(header)
    if match is None:
        return None
    first, last = match[1], match[2]
    if not first and not last:
        return None
    if not first:  # suffix range: the last N bytes
        suffix = int(last)
        if suffix == 0 or size == 0:
            return Unsatisfiable(size)
        return ByteRange(max(size - suffix, 0), size - 1, size)
    start = int(first)
    end = int(last) if last else size - 1
    if last and end < start:
        return None  # invalid: ignored
    if start >= size:
        return Unsatisfiable(size)
    return ByteRange(start, min(end, size - 1), size)
