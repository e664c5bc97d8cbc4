"""The benchmark's own Cassandra node: 127.0.0.9, data under `var/bench-cassandra/`.

A dedicated node (see `reelstream.infra.dedicated_cassandra`): the fault tests of other
sessions kill and restart the development node on 127.0.0.1, which would fail a phase or
skew it silently. It starts from empty data and is stopped and wiped at the end of a run.
"""

from __future__ import annotations

from loadtest.bench.settings import load_settings
from reelstream.infra.dedicated_cassandra import DedicatedCassandra

ADDRESS = "127.0.0.9"
MEMTABLE_HEAP_MB = 256
"""memtable_heap_space, whatever the heap (BENCH_CASSANDRA_HEAP_MB): the development
node's third of 768 MiB, so a larger heap leaves the memtables' flush cadence as it was."""


def node() -> DedicatedCassandra:
    return DedicatedCassandra(
        index=9,
        address=ADDRESS,
        folder="bench-cassandra",
        cluster_name="reelstream-bench",
        heap_mb=load_settings().cassandra_heap_mb,
        memtable_heap_mb=MEMTABLE_HEAP_MB,
    )


def pid() -> int | None:
    return node().pid()


def up() -> None:
    """Starts the node from empty data unless it already runs; returns once CQL answers."""
    node().up()


def down() -> None:
    """Stops the node (SIGTERM, SIGKILL after 30 s) and deletes its data."""
    node().down()
