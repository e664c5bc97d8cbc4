"""How every Reelstream process opens a gRPC channel to another one.

One place so that transport security and load-balancing policy apply to every internal
client alike (callers never build channels themselves). Channels use mutual TLS with this
process's certificate, or plaintext when `REELSTREAM_PLAINTEXT=1`
(reelstream/transport_security.py).
"""

from __future__ import annotations

from typing import Any

import grpc
from grpc import aio

from reelstream.transport_security import channel_credentials

# Message size limits protect every server and client from memory blow-ups by one peer.
MAX_MESSAGE_BYTES = 16 * 1024 * 1024


def channel_options() -> list[tuple[str, Any]]:
    """Channel options of every Reelstream client channel."""
    return [
        ("grpc.max_receive_message_length", MAX_MESSAGE_BYTES),
        ("grpc.max_send_message_length", MAX_MESSAGE_BYTES),
        ("grpc.keepalive_time_ms", 20_000),
        ("grpc.keepalive_timeout_ms", 10_000),
        ("grpc.keepalive_permit_without_calls", 1),
        ("grpc.initial_reconnect_backoff_ms", 200),
        ("grpc.max_reconnect_backoff_ms", 2_000),
    ]


def open_channel(address: str, identity: str | None = None) -> aio.Channel:
    """An asyncio channel to the Reelstream service at `address`, presenting `identity`
    (default: this process's; the moderator console in the origin acts as `moderator`)."""
    credentials = channel_credentials(identity)
    if credentials is None:
        return aio.insecure_channel(address, options=channel_options())
    return aio.secure_channel(address, credentials, options=channel_options())


def open_blocking_channel(address: str, identity: str | None = None) -> grpc.Channel:
    """A blocking channel to `address` presenting `identity` (default: this process's), for
    tools outside the event loop: the stack's health checks, the load generator."""
    credentials = channel_credentials(identity)
    if credentials is None:
        return grpc.insecure_channel(address, options=channel_options())
    return grpc.secure_channel(address, credentials, options=channel_options())
