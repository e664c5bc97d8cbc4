"""How every Reelstream process opens a gRPC channel to another one.

One place so that transport security and load-balancing policy apply to every internal
client alike (callers never build channels themselves).
"""

from __future__ import annotations

from typing import Any

from grpc import aio

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


def open_channel(address: str) -> aio.Channel:
    """An asyncio channel from this process to the Reelstream service at `address`."""
    return aio.insecure_channel(address, options=channel_options())
