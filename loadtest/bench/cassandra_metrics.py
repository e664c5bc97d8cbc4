"""Cassandra's own write counters, read over CQL, so writes/s need neither JMX nor nodetool.

Cassandra 5.0 exposes per-table latency histograms as virtual tables. Their `count` column
is a running total since the node started:

- `system_views.local_write_latency`: partition updates applied by this node's storage
  engine (a single-partition batch of many rows is one; a Paxos commit is one).
- `system_views.coordinator_write_latency`: writes coordinated for the table.

The benchmark reads both before and after a phase, for its own keyspace only, so other
keyspaces on a shared node do not pollute the figure.
"""

from __future__ import annotations

from dataclasses import dataclass

from cassandra.cluster import Cluster, Session

from loadtest.bench.bench_cassandra import ADDRESS


@dataclass(frozen=True)
class WriteCounts:
    local: int
    coordinator: int

    def __sub__(self, other: WriteCounts) -> WriteCounts:
        return WriteCounts(self.local - other.local, self.coordinator - other.coordinator)


class CassandraAdmin:
    """A small synchronous session for DDL and metrics (not on any measured path)."""

    def __init__(self, host: str = ADDRESS, port: int = 9042) -> None:
        self._cluster = Cluster([host], port=port)
        self._session: Session = self._cluster.connect()
        self._session.default_timeout = 120

    def write_counts(self, keyspace: str) -> WriteCounts:
        totals = []
        for table in ("local_write_latency", "coordinator_write_latency"):
            rows = self._session.execute(
                f"SELECT count FROM system_views.{table} WHERE keyspace_name = %s ALLOW FILTERING",
                (keyspace,),
            )
            totals.append(sum(int(row.count) for row in rows))
        return WriteCounts(totals[0], totals[1])

    def drop_keyspace(self, keyspace: str) -> None:
        self._session.execute(f"DROP KEYSPACE IF EXISTS {keyspace}")

    def execute(self, statement: str) -> None:
        self._session.execute(statement)

    def close(self) -> None:
        self._cluster.shutdown()
