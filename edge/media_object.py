"""A file of a reel as the edge holds it, and the interface of whatever supplies files."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from typing import Protocol

from edge.hls_names import HlsObject
from edge.mapped_body import Body


@dataclass(frozen=True, slots=True)
class MediaObject:
    """The bytes of one playlist or segment with what HTTP needs to serve it."""

    body: Body
    """Playlists are bytes; large segments live in a memory file (edge/mapped_body.py)."""
    content_type: str
    etag: str
    """Strong entity tag, quoted as HTTP sends it."""


def strong_etag(body: bytes | memoryview) -> str:
    """A quoted strong ETag derived from the content (when the origin sent none)."""
    return '"' + hashlib.blake2b(body, digest_size=12).hexdigest() + '"'


def quoted_etag(tag: str, body: bytes | memoryview) -> str:
    """`tag` as a quoted entity tag, or one derived from `body` when `tag` is empty."""
    if not tag:
        return strong_etag(body)
    tag = tag.strip()
    if tag.startswith('"') or tag.startswith('W/"'):
        return tag
    return f'"{tag}"'


class MediaSource(Protocol):
    """Supplies reel files (the origin over gRPC in production, a fake in tests)."""

    async def fetch(self, obj: HlsObject) -> MediaObject:
        """The file `obj`.

        Raises:
            MediaError: one of its subclasses, saying why the file cannot be had.
        """
        ...

    async def close(self) -> None: ...
