"""How every Reelstream process opens a gRPC channel to another one.

One place so that transport security and load-balancing policy apply to every internal
client alike (callers never build channels themselves). Channels use mutual TLS with this
process's certificate, or plaintext when `REELSTREAM_PLAINTEXT=1`
(reelstream/transport_security.py).
"""

from __future__ import annotations

import ipaddress
import json
import socket
from collections.abc import Sequence
from dataclasses import dataclass
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


# --- Balanced channels: one channel over every member of a service -------------------------
#
# grpc Python has no custom resolver API, so the member list goes into the target itself
# (`ipv4:a:p,b:q`, gRPC's static multi-address resolver) and a new channel is built when
# the list changes (reelstream/member_pool.py). A single `dns:///name:port` target (a
# Kubernetes headless Service) is passed through: gRPC's DNS resolver then finds the pods.
# Within one channel gRPC does the rest: round_robin over the subchannels whose health
# Watch says SERVING (a server turning NOT_SERVING at shutdown leaves the rotation before it
# stops accepting calls; a dead one fails its connection and leaves at once), retries of
# idempotent reads on UNAVAILABLE on another member, and keepalive pings that notice a
# silently dead peer.


@dataclass(frozen=True)
class BalancingPolicy:
    """How calls to one service are balanced and retried."""

    service: str
    """Full gRPC service name (e.g. reelstream.v1.OriginService): members are
    health-checked under this name, which the shell sets SERVING/NOT_SERVING."""
    retried_methods: tuple[str, ...] = ()
    """Idempotent methods retried on UNAVAILABLE (on another member, round_robin moving
    on); the others are never retried by the channel (a lost answer may have been applied)."""
    max_attempts: int = 3
    """Attempts of a retried method, the first included (gRPC caps it at 5)."""
    tls_name: str = ""
    """Name every member's certificate carries (the tier's identity, e.g. `origin`: dev
    certificates carry DNS:<identity>); needed because a multi-address target has no single
    host name to verify. Empty: verify the target's own host."""


def service_config_json(policy: BalancingPolicy) -> str:
    """gRPC service config: round_robin, client-side health checking, retry policy."""
    config: dict[str, Any] = {
        "loadBalancingConfig": [{"round_robin": {}}],
        "healthCheckConfig": {"serviceName": policy.service},
    }
    if policy.retried_methods:
        config["methodConfig"] = [
            {
                "name": [
                    {"service": policy.service, "method": method}
                    for method in policy.retried_methods
                ],
                "retryPolicy": {
                    "maxAttempts": policy.max_attempts,
                    "initialBackoff": "0.05s",
                    "maxBackoff": "0.5s",
                    "backoffMultiplier": 2,
                    "retryableStatusCodes": ["UNAVAILABLE"],
                },
            }
        ]
    return json.dumps(config, separators=(",", ":"))


def balanced_target(addresses: Sequence[str]) -> str:
    """The gRPC target naming every address: `ipv4:`/`ipv6:` lists of IP literals, or one
    `dns:///host:port` as given.

    Raises:
        ValueError: no address, a host name among several addresses (resolve them first,
            `resolve_addresses`), or IPv4 mixed with IPv6.
    """
    if not addresses:
        raise ValueError("a balanced channel needs at least one address")
    if len(addresses) == 1 and addresses[0].startswith("dns:"):
        return addresses[0]
    families = set()
    for address in addresses:
        host, _, port = address.rpartition(":")
        if not port.isdigit():
            raise ValueError(f"address {address!r} is not host:port")
        try:
            families.add(ipaddress.ip_address(host.strip("[]")).version)
        except ValueError:
            if len(addresses) == 1:
                return f"dns:///{address}"
            raise ValueError(
                f"{address!r} is a host name: resolve it before balancing over several"
            ) from None
    if len(families) > 1:
        raise ValueError(f"cannot balance over IPv4 and IPv6 at once: {list(addresses)}")
    return f"ipv{families.pop()}:" + ",".join(addresses)


def resolve_addresses(addresses: Sequence[str]) -> list[str]:
    """Host names replaced by their IPv4 addresses (blocking: for tools outside the loop)."""
    resolved: list[str] = []
    for address in addresses:
        host, _, port = address.rpartition(":")
        try:
            ipaddress.ip_address(host.strip("[]"))
            resolved.append(address)
            continue
        except ValueError:
            pass
        infos = socket.getaddrinfo(host, int(port), socket.AF_INET, socket.SOCK_STREAM)
        resolved.extend(f"{info[4][0]}:{port}" for info in infos)
    return list(dict.fromkeys(resolved))


def balanced_channel_options(policy: BalancingPolicy, secure: bool) -> list[tuple[str, Any]]:
    options = [
        *channel_options(),
        ("grpc.service_config", service_config_json(policy)),
        ("grpc.enable_retries", 1),
        # Static targets carry no service config of their own; ours is the only one.
        ("grpc.service_config_disable_resolution", 1),
    ]
    if secure and policy.tls_name:
        options.append(("grpc.ssl_target_name_override", policy.tls_name))
    return options


def open_balanced_channel(
    addresses: Sequence[str], policy: BalancingPolicy, identity: str | None = None
) -> aio.Channel:
    """An asyncio channel balancing calls over `addresses` (members of one service),
    presenting `identity` (default: this process's) like `open_channel`.

    Raises:
        ValueError: see `balanced_target`.
    """
    target = balanced_target(addresses)
    credentials = channel_credentials(identity)
    options = balanced_channel_options(policy, secure=credentials is not None)
    if credentials is None:
        return aio.insecure_channel(target, options=options)
    return aio.secure_channel(target, credentials, options=options)


def open_balanced_blocking_channel(
    addresses: Sequence[str], policy: BalancingPolicy, identity: str | None = None
) -> grpc.Channel:
    """The blocking twin of `open_balanced_channel` (the load generator, tools); host
    names are resolved here.

    Raises:
        ValueError: see `balanced_target`.
    """
    target = balanced_target(resolve_addresses(addresses) if len(addresses) > 1 else addresses)
    credentials = channel_credentials(identity)
    options = balanced_channel_options(policy, secure=credentials is not None)
    if credentials is None:
        return grpc.insecure_channel(target, options=options)
    return grpc.secure_channel(target, credentials, options=options)


# The reads each tier's callers may retry on another member (they change nothing).
EDGE_POLICY = BalancingPolicy(
    service="reelstream.v1.EdgeService",
    retried_methods=("GetCounts", "GetLikeState"),
    tls_name="edge",
)
ORIGIN_POLICY = BalancingPolicy(
    service="reelstream.v1.OriginService",
    retried_methods=("GetReel", "GetReels", "GetManifest", "GetSegment"),
    tls_name="origin",
)
