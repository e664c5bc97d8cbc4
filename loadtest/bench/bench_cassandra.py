"""The benchmark's own Cassandra node: 127.0.0.9, data under `var/bench-cassandra/`.

A dedicated node (see `reelstream.infra.dedicated_cassandra`): the fault tests of other
sessions kill and restart the development node on 127.0.0.1, which would fail a phase or
skew it silently. It starts from empty data and is stopped and wiped at the end of a run.
"""

from __future__ import annotations

from reelstream.infra.dedicated_cassandra import DedicatedCassandra

ADDRESS = "127.0.0.9"
NODE = DedicatedCassandra(
    index=9, address=ADDRESS, folder="bench-cassandra", cluster_name="reelstream-bench"
)


def pid() -> int | None:
    return NODE.pid()


def up() -> None:
    """Starts the node from empty data unless it already runs; returns once CQL answers."""
    NODE.up()


def down() -> None:
    """Stops the node (SIGTERM, SIGKILL after 30 s) and deletes its data."""
    NODE.down()
