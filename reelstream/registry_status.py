"""The `make status` view of the service registry: every live member of every tier.

Read with the blocking driver (the status command runs outside any event loop). The view
shows what routers see: members are listed from their heartbeat rows, so a process started
outside `make up` (another host, a pod) appears too, and a crashed one disappears when its
row expires.
"""

from __future__ import annotations

import time
from collections.abc import Callable

from cassandra.cluster import Cluster

from reelstream.cassandra_client import CassandraConfigFields


def registry_lines(
    config: CassandraConfigFields, health: Callable[[str], str], timeout_s: float = 5.0
) -> list[str]:
    """One line per live member (kind, name, addresses, state, heartbeat age, health)."""
    cluster = Cluster(
        list(config.cassandra_hosts),
        port=config.cassandra_port,
        protocol_version=5,
        connect_timeout=timeout_s,
    )
    try:
        rows = list(
            cluster.connect().execute(
                "SELECT kind, member, grpc_address, http_address, state, expires_ms"
                f" FROM {config.keyspace}.service_members",
                timeout=timeout_s,
            )
        )
    except Exception as exc:  # no node, no keyspace yet: say so, the rest of status goes on
        return [f"service registry: unreadable ({type(exc).__name__}: {exc})"]
    finally:
        cluster.shutdown()
    now_ms = time.time() * 1000
    live = sorted(
        (row for row in rows if (row.expires_ms or 0) > now_ms), key=lambda r: (r.kind, r.member)
    )
    lines = [f"service registry ({len(live)} live members):"]
    lines.append(f"  {'kind':<11}{'member':<24}{'grpc':<18}{'http':<18}{'state':<9}health")
    for row in live:
        lines.append(
            f"  {row.kind:<11}{row.member:<24}{row.grpc_address or '-':<18}"
            f"{row.http_address or '-':<18}{row.state or '-':<9}{health(row.grpc_address)}"
        )
    return lines
