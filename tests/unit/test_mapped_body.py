"""Segments held in memory files: same bytes, descriptor lifetime, fallbacks."""

from __future__ import annotations

import gc
import os
import socket

import pytest

from edge.mapped_body import (
    MAPPED_MIN_BYTES,
    MappedBody,
    body_bytes,
    body_view,
    hold_body,
    send_file_now,
)


def test_a_mapped_body_holds_the_joined_parts() -> None:
    parts = [os.urandom(1000), os.urandom(70_000), b"tail"]
    body = MappedBody(parts, sum(map(len, parts)))
    assert len(body) == 71_004
    assert body_view(body) == b"".join(parts)
    assert body_bytes(body) == b"".join(parts)
    assert os.pread(body.fileno(), 4, 71_000) == b"tail"


def test_a_mapped_body_is_sealed_against_writes() -> None:
    body = MappedBody([b"x" * 10], 10)
    with pytest.raises(PermissionError):
        os.pwrite(body.fileno(), b"y", 0)


def test_the_descriptor_closes_when_the_last_reference_goes() -> None:
    body = MappedBody([b"x" * 10], 10)
    fd = body.fileno()
    view = body_view(body)
    del body
    gc.collect()
    with pytest.raises(OSError, match="Bad file descriptor"):
        os.fstat(fd)
    assert view == b"x" * 10  # a view still in use keeps the mapping alive


def test_small_objects_stay_bytes_and_wrong_sizes_are_refused() -> None:
    assert hold_body([b"ab", b"c"], 3) == b"abc"
    assert isinstance(hold_body([b"a" * MAPPED_MIN_BYTES], MAPPED_MIN_BYTES), MappedBody)
    with pytest.raises(ValueError, match="not 4"):
        MappedBody([b"abc"], 4)
    with pytest.raises(ValueError, match="at least one byte"):
        MappedBody([], 0)


def test_send_file_now_sends_what_the_socket_takes_and_stops_when_full() -> None:
    data = os.urandom(4 * 1024 * 1024)
    body = MappedBody([data], len(data))
    sender, receiver = socket.socketpair()
    with sender, receiver:
        sender.setblocking(False)
        sent = send_file_now(sender.fileno(), body, 100, len(data) - 100)
        assert 0 < sent < len(data) - 100  # a 4 MB body does not fit a socketpair's buffer
        received = bytearray()
        receiver.settimeout(5)
        while len(received) < sent:
            received += receiver.recv(1 << 20)
        assert bytes(received) == data[100 : 100 + sent]
