"""The benchmark's own Cassandra node: 127.0.0.9, data under `var/bench-cassandra/`.

Why not the development node on 127.0.0.1: the machine is shared, and the fault tests of
other sessions kill and restart that node; a restart in the middle of a phase would fail the
run or, worse, skew it silently. The benchmark's node is started by the project's launcher
code with the same settings as the development node (Cassandra 5.0.9, 768 MiB heap, same
yaml), from empty data, and is stopped and wiped at the end. It shares the machine's cores
with everything else, exactly like the development node would.
"""

from __future__ import annotations

import shutil

from reelstream.infra import cassandra_node, local_process
from reelstream.infra.cassandra_runtime import (
    CassandraNodeSpec,
    default_cache_dir,
    find_java,
    resolve_classpath,
)

ADDRESS = "127.0.0.9"
NODE_INDEX = 9  # node9: JMX port 7207, clear of a 3-node development cluster on .1-.3
MIN_TOKEN = -(2**63)
START_TIMEOUT_S = 300.0


def node_spec() -> CassandraNodeSpec:
    return CassandraNodeSpec(
        index=NODE_INDEX,
        address=ADDRESS,
        base_dir=local_process.var_dir() / "bench-cassandra",
        initial_token=MIN_TOKEN,
        seeds=(ADDRESS,),
        cluster_name="reelstream-bench",
    )


def pid() -> int | None:
    return cassandra_node.read_pid(node_spec())


def up() -> None:
    """Starts the node from empty data unless it already runs; returns once CQL answers."""
    spec = node_spec()
    if cassandra_node.read_pid(spec) is None:
        shutil.rmtree(spec.data_dir, ignore_errors=True)
        cassandra_node.start_node(spec, find_java(), resolve_classpath(default_cache_dir()))
    cassandra_node.wait_until_ready([spec], timeout_s=START_TIMEOUT_S)


def down() -> None:
    """Stops the node (SIGTERM, SIGKILL after 30 s) and deletes its data."""
    spec = node_spec()
    running = cassandra_node.read_pid(spec)
    if running is not None:
        print(f"stopping the benchmark's Cassandra ({ADDRESS}) pid {running}", flush=True)
        local_process.terminate([(running, spec.config_file.as_uri())], grace_s=30.0)
    spec.pid_file.unlink(missing_ok=True)
    shutil.rmtree(spec.data_dir, ignore_errors=True)
