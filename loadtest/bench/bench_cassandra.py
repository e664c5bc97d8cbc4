"""The benchmark's own Cassandra node: 127.0.0.9, data under `var/bench-cassandra/`.

A dedicated node (see `reelstream.infra.dedicated_cassandra`): the fault tests of other
sessions kill and restart the development node on 127.0.0.1, which would fail a phase or
skew it silently. It starts from empty data and is stopped and wiped at the end of a run.
"""

from __future__ import annotations

import os

from reelstream.infra.dedicated_cassandra import DedicatedCassandra

ADDRESS = "127.0.0.9"
# The development node's 768 MiB heap gives memtables 256 MiB: under the soak's load
# `reel_state` (every reel rewritten by each snapshot) filled that every ~2.3 minutes; the
# shards drained 44,000-66,000 events/s of the 87,000 offered in the windows of the first
# two flushes (~95 MiB serialized, 6-15 s each; docs/reliability.md, session 10). A larger
# pool flushes less often, and a row rewritten before its flush is written once. The
# machine has 24 GiB; BENCH_CASSANDRA_HEAP_MB sizes it.
HEAP_MB = int(os.environ.get("BENCH_CASSANDRA_HEAP_MB", "2048"))
NODE = DedicatedCassandra(
    index=9,
    address=ADDRESS,
    folder="bench-cassandra",
    cluster_name="reelstream-bench",
    heap_mb=HEAP_MB,
)


def pid() -> int | None:
    return NODE.pid()


def up() -> None:
    """Starts the node from empty data unless it already runs; returns once CQL answers."""
    NODE.up()


def down() -> None:
    """Stops the node (SIGTERM, SIGKILL after 30 s) and deletes its data."""
    NODE.down()
