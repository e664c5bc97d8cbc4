"""Segment bytes held in an anonymous memory file, so that the kernel can send them.

A cached segment sent with `send()` is copied from the process into the socket on every
response; nginx sends files with `sendfile()` and skips that copy. A memfd gives cached
bytes a file descriptor: responses `sendfile()` from it, and a read-only mapping of the same
pages serves everything else (ranges, hashing, the fallback write path), so the bytes are
held once.

The descriptor is closed when the last reference to the body goes (an evicted segment
still being sent keeps it open: the response holds a reference), never while in use.

A response's header block goes out with MSG_MORE just before the sendfile, so the kernel
sends it in the body's first TCP segment instead of a small packet of its own (nginx's
`tcp_nopush` does the same with TCP_CORK). On loopback a packet of its own cost about a
tenth of the edge's CPU for 200 KB segments (a py-spy profile under wrk).
"""

from __future__ import annotations

import errno
import fcntl
import logging
import mmap
import os
import socket
import weakref
from collections.abc import Sequence

from prometheus_client import Counter

logger = logging.getLogger(__name__)

# Below this a segment is one small send anyway; a descriptor per object is not worth it.
MAPPED_MIN_BYTES = 64 * 1024

SENDFILE_BYTES = Counter(
    "edge_http_sendfile_bytes_total", "Response body bytes the kernel sent from memory files"
)
MAPPED_FALLBACKS = Counter(
    "edge_mapped_body_fallbacks_total",
    "Segments kept as plain bytes because a memory file could not be made (e.g. fd limit)",
)

_SEALS = fcntl.F_SEAL_SEAL | fcntl.F_SEAL_SHRINK | fcntl.F_SEAL_GROW | fcntl.F_SEAL_WRITE


class MappedBody:
    """Immutable bytes in a sealed memfd: `fileno()` for sendfile, `view` for the rest."""

    __slots__ = ("__weakref__", "_fd", "_map", "view")

    def __init__(self, parts: Sequence[bytes | memoryview], size: int) -> None:
        if size <= 0:
            raise ValueError("a mapped body needs at least one byte")
        fd = os.memfd_create("reelstream-segment", os.MFD_CLOEXEC | os.MFD_ALLOW_SEALING)
        try:
            written = 0
            for part in parts:
                view = memoryview(part)
                while view:
                    n = os.write(fd, view)
                    view = view[n:]
                    written += n
            if written != size:
                raise ValueError(f"parts hold {written} bytes, not {size}")
            fcntl.fcntl(fd, fcntl.F_ADD_SEALS, _SEALS)
            self._map = mmap.mmap(fd, size, flags=mmap.MAP_SHARED, prot=mmap.PROT_READ)
        except BaseException:
            os.close(fd)
            raise
        self._fd = fd
        self.view = memoryview(self._map)
        weakref.finalize(self, os.close, fd)

    def __len__(self) -> int:
        return len(self.view)

    def fileno(self) -> int:
        """The memfd (valid as long as this object is referenced)."""
        return self._fd


Body = bytes | MappedBody


def hold_body(parts: Sequence[bytes], size: int) -> Body:
    """`parts` joined: in a memory file when large, else (or when one cannot be made) bytes."""
    if size >= MAPPED_MIN_BYTES:
        try:
            return MappedBody(parts, size)
        except OSError as exc:
            # EMFILE/ENFILE/ENOMEM: serve from bytes rather than fail the viewer.
            MAPPED_FALLBACKS.inc()
            if exc.errno not in (errno.EMFILE, errno.ENFILE, errno.ENOMEM):
                logger.warning("memfd body failed", extra={"fields": {"error": str(exc)}})
    return b"".join(parts)


def body_view(body: Body) -> memoryview:
    """The bytes of `body` without copying them."""
    return body.view if isinstance(body, MappedBody) else memoryview(body)


def body_bytes(body: Body) -> bytes:
    """The bytes of `body` as a bytes object (copies a mapped body: small objects only)."""
    return body if isinstance(body, bytes) else bytes(body.view)


def send_file_now(socket_fd: int, body: MappedBody, offset: int, count: int) -> int:
    """Sends what the socket takes at once of `body[offset:offset+count]` with sendfile and
    returns how many bytes that was (the caller writes the rest through its transport)."""
    sent = 0
    while sent < count:
        try:
            n = os.sendfile(socket_fd, body.fileno(), offset + sent, count - sent)
        except InterruptedError:
            continue
        except OSError:
            # EAGAIN (socket buffer full) or a reset peer: the transport's write path
            # takes over and waits for, or reports, the connection as it always does.
            break
        if n == 0:
            break
        sent += n
    SENDFILE_BYTES.inc(sent)
    return sent


def send_head_and_file(
    socket_fd: int, family: int, head: bytes, body: MappedBody, offset: int, count: int
) -> tuple[int, int]:
    """Sends what a non-blocking TCP socket takes at once of `head` followed by
    `body[offset:offset+count]`, and returns how much of each that was (the caller writes
    the rest through its transport, which also pushes anything held back by MSG_MORE).

    The body is started only once the whole head is in the socket, so the bytes leave in
    order. The socket object wraps the descriptor without owning it (uvloop's own
    setsockopt does the same): it is detached, never closed.
    """
    sock = socket.socket(family, socket.SOCK_STREAM, 0, socket_fd)
    try:
        try:
            head_sent = sock.send(head, socket.MSG_MORE)
        except OSError:
            return 0, 0  # EAGAIN or a reset peer: the transport reports it as always
    finally:
        sock.detach()
    if head_sent < len(head):
        return head_sent, 0
    return head_sent, send_file_now(socket_fd, body, offset, count)
