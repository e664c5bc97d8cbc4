"""A single-node Cassandra owned by one tool (a benchmark, the fault tests), apart from the
development node on 127.0.0.1.

Why a node of its own: the machine is shared. The fault tests kill and restart their
Cassandra; doing that to the development node would break every other test or service
using it at the time, and a benchmark phase running on a node someone else restarts would
fail or be skewed silently. A dedicated node is started by the same launcher with the same
settings as the development node (Cassandra 5.0.9, 768 MiB heap unless told, same yaml), on
its own loopback address and data folder, from empty data, and is stopped and wiped by its
owner.
"""

from __future__ import annotations

import shutil
import time
from dataclasses import dataclass

from cassandra import ConsistencyLevel, DriverException
from cassandra.cluster import EXEC_PROFILE_DEFAULT, Cluster, ExecutionProfile, NoHostAvailable
from cassandra.policies import WhiteListRoundRobinPolicy

from reelstream.infra import cassandra_node, local_process
from reelstream.infra.cassandra_runtime import (
    CassandraLaunchError,
    CassandraNodeSpec,
    default_cache_dir,
    find_java,
    resolve_classpath,
)

_MIN_TOKEN = -(2**63)
START_TIMEOUT_S = 300.0
_PROBE_CREATE = (
    "CREATE KEYSPACE IF NOT EXISTS cluster_probe WITH replication ="
    " {{'class': 'SimpleStrategy', 'replication_factor': {rf}}}"
)
_PROBE_TABLE = "CREATE TABLE IF NOT EXISTS cluster_probe.alive (k int PRIMARY KEY)"


@dataclass(frozen=True)
class DedicatedCassandra:
    """One standalone node: its own address, data folder under the var dir and cluster name."""

    index: int
    """Node index: names `nodeN` and picks the JMX port (7199 + index - 1); use one clear of
    a 3-node development cluster on indexes 1-3."""
    address: str
    """Loopback address the node listens on (CQL port 9042, like every node)."""
    folder: str
    """Folder under `$REELSTREAM_VAR_DIR` holding the node's config, data and logs."""
    cluster_name: str
    heap_mb: int = 768
    """-Xms/-Xmx, as the development node's."""
    memtable_heap_mb: int | None = None
    """memtable_heap_space; None: a third of the heap, as the development node's."""

    def spec(self) -> CassandraNodeSpec:
        return CassandraNodeSpec(
            index=self.index,
            address=self.address,
            base_dir=local_process.var_dir() / self.folder,
            initial_token=_MIN_TOKEN,
            heap_mb=self.heap_mb,
            memtable_heap_mb=self.memtable_heap_mb,
            seeds=(self.address,),
            cluster_name=self.cluster_name,
        )

    def pid(self) -> int | None:
        return cassandra_node.read_pid(self.spec())

    def up(self, *, fresh: bool = True) -> None:
        """Starts the node unless it runs (from empty data when `fresh`); returns once CQL
        answers."""
        spec = self.spec()
        if cassandra_node.read_pid(spec) is None:
            if fresh:
                shutil.rmtree(spec.data_dir, ignore_errors=True)
            cassandra_node.start_node(spec, find_java(), resolve_classpath(default_cache_dir()))
        cassandra_node.wait_until_ready([spec], timeout_s=START_TIMEOUT_S)

    def kill(self) -> None:
        """SIGKILL: a crash with no drain and no commitlog flush."""
        spec = self.spec()
        running = cassandra_node.read_pid(spec)
        if running is not None:
            local_process.terminate([(running, spec.config_file.as_uri())], grace_s=0.0)
        spec.pid_file.unlink(missing_ok=True)

    def restart(self) -> None:
        """Starts the node again on its existing data (after `kill`), waiting for CQL."""
        self.kill()
        self.up(fresh=False)

    def down(self, *, keep_data: bool = False) -> None:
        """Stops the node (SIGTERM, SIGKILL after 30 s) and deletes its data unless kept."""
        spec = self.spec()
        running = cassandra_node.read_pid(spec)
        if running is not None:
            print(f"stopping Cassandra {spec.name} ({self.address}) pid {running}", flush=True)
            local_process.terminate([(running, spec.config_file.as_uri())], grace_s=30.0)
        spec.pid_file.unlink(missing_ok=True)
        if not keep_data:
            shutil.rmtree(spec.data_dir, ignore_errors=True)


@dataclass(frozen=True)
class DedicatedCassandraCluster:
    """A private multi-node cluster (replication tests), one node per loopback address.

    Same launcher and yaml as every other node, with a smaller heap: three JVMs share the
    machine with everything else. The first address is the only seed; tokens are evenly
    spaced, so the nodes need no bootstrap and the non-seeds start in parallel.
    """

    first_index: int
    """Index of the first node; node k uses index `first_index + k` (its JMX port and name)
    and address 127.0.0.<index>. Keep clear of 1-9 (development cluster, dedicated nodes)."""
    nodes: int
    folder: str
    """Folder under `$REELSTREAM_VAR_DIR` holding every node's config, data and logs."""
    cluster_name: str
    heap_mb: int = 512
    """-Xms/-Xmx per node: 3 x (512 MiB heap + ~400 MiB off-heap) next to the other tests."""

    @property
    def addresses(self) -> tuple[str, ...]:
        return tuple(f"127.0.0.{self.first_index + k}" for k in range(self.nodes))

    def specs(self) -> list[CassandraNodeSpec]:
        base = local_process.var_dir() / self.folder
        return [
            CassandraNodeSpec(
                index=self.first_index + k,
                address=address,
                base_dir=base,
                initial_token=_MIN_TOKEN + (2**64 * k) // self.nodes,
                heap_mb=self.heap_mb,
                seeds=(self.addresses[0],),
                cluster_name=self.cluster_name,
            )
            for k, address in enumerate(self.addresses)
        ]

    def up(self) -> None:
        """Starts every node from empty data (seed first) and returns once all answer CQL
        and the seed has met every peer."""
        specs = self.specs()
        java, classpath = find_java(), resolve_classpath(default_cache_dir())
        for spec in specs:
            if cassandra_node.read_pid(spec) is None:
                shutil.rmtree(spec.data_dir, ignore_errors=True)
        seed, *others = specs
        if cassandra_node.read_pid(seed) is None:
            cassandra_node.start_node(seed, java, classpath)
        cassandra_node.wait_for_storage_port(seed, START_TIMEOUT_S)
        for spec in others:
            if cassandra_node.read_pid(spec) is None:
                cassandra_node.start_node(spec, java, classpath)
        cassandra_node.wait_until_ready(specs, timeout_s=START_TIMEOUT_S)
        cassandra_node.wait_for_peers(seed, len(others), timeout_s=START_TIMEOUT_S)
        self.wait_all_see_all()

    def kill(self, node: int) -> None:
        """SIGKILLs node `node` (0-based): a crash with no drain and no commitlog flush."""
        spec = self.specs()[node]
        running = cassandra_node.read_pid(spec)
        if running is not None:
            local_process.terminate([(running, spec.config_file.as_uri())], grace_s=0.0)
        spec.pid_file.unlink(missing_ok=True)

    def restart(self, node: int) -> None:
        """Starts node `node` again on its existing data and waits until it answers CQL."""
        self.kill(node)
        spec = self.specs()[node]
        cassandra_node.start_node(spec, find_java(), resolve_classpath(default_cache_dir()))
        cassandra_node.wait_until_ready([spec], timeout_s=START_TIMEOUT_S)
        self.wait_all_see_all()

    def wait_all_see_all(self, timeout_s: float = START_TIMEOUT_S) -> None:
        """Waits until every node, as coordinator, sees every replica alive: a read at
        consistency ALL of a probe table replicated to all nodes succeeds through each.

        A restarted node answering CQL is not enough: the others may still hold it for
        down, and stopping a second node then would leave them without a quorum.
        """
        started = time.monotonic()
        pending = list(self.addresses)
        while pending:
            address = pending[0]
            rows = cassandra_node.cql_query(
                address, _PROBE_CREATE.format(rf=self.nodes), timeout_s=10.0
            )
            if rows is not None and self._read_all(address):
                pending.pop(0)
                continue
            if time.monotonic() - started > timeout_s:
                raise CassandraLaunchError(
                    f"{address} does not see every node of {self.folder} alive after"
                    f" {timeout_s:.0f} s"
                )
            time.sleep(0.5)
        print(f"{self.folder}: every node sees all {self.nodes} alive", flush=True)

    @staticmethod
    def _read_all(address: str) -> bool:
        profile = ExecutionProfile(
            load_balancing_policy=WhiteListRoundRobinPolicy([address]),
            consistency_level=ConsistencyLevel.ALL,
            request_timeout=10.0,
        )
        cluster = Cluster(
            [address], protocol_version=5, execution_profiles={EXEC_PROFILE_DEFAULT: profile}
        )
        try:
            session = cluster.connect()
            session.execute(_PROBE_TABLE)
            session.execute("SELECT k FROM cluster_probe.alive WHERE k = 0")
            return True
        except (DriverException, NoHostAvailable, OSError):
            return False
        finally:
            cluster.shutdown()

    def down(self, *, keep_data: bool = False) -> None:
        """Stops every node (SIGTERM, SIGKILL after 30 s) and deletes the data unless kept."""
        specs = self.specs()
        running = [
            (pid, spec.config_file.as_uri())
            for spec in specs
            if (pid := cassandra_node.read_pid(spec)) is not None
        ]
        if running:
            print(f"stopping Cassandra cluster {self.folder}: pids {[p for p, _ in running]}")
            local_process.terminate(running, grace_s=30.0)
        for spec in specs:
            spec.pid_file.unlink(missing_ok=True)
            if not keep_data:
                shutil.rmtree(spec.data_dir, ignore_errors=True)
