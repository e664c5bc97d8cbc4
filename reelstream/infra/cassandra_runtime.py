"""What one Cassandra node needs to run: its jars, a Java, its config files and command line.

Cassandra runs straight from its Maven jars (`java -cp`), so this module does what the
tarball's bin/cassandra and conf/ would: resolves the runtime classpath once into a cache,
renders a minimal cassandra.yaml and logback.xml per node, and assembles the JVM flags Cassandra
5.0 needs on Java 17. Nothing here starts or stops a process; `cassandra_node` does that.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from reelstream.infra import local_process
from reelstream.infra.local_process import REPO_ROOT

CASSANDRA_VERSION = "5.0.9"
POM_FILE = REPO_ROOT / "deploy" / "cassandra" / "pom.xml"
JAVA_17 = Path("/usr/lib/jvm/java-17-openjdk-amd64/bin/java")
INSTALL_HINT = "apt-get install -y maven openjdk-17-jdk-headless"
MAIN_CLASS = "org.apache.cassandra.service.CassandraDaemon"
SEED_ADDRESS = "127.0.0.1"
_MIN_TOKEN = -(2**63)
MEMTABLE_OFFHEAP_SPACE_MIB = 1024
"""memtable_offheap_space of every node (the yaml below explains the memtable settings)."""

# Cassandra 5.0 on Java 17 dies at start-up without these (its conf/jvm17-server.options plus
# what cassandra-unit adds); bin/cassandra would normally supply them.
_ADD_EXPORTS = (
    "java.base/jdk.internal.misc",
    "java.management.rmi/com.sun.jmx.remote.internal.rmi",
    "java.rmi/sun.rmi.registry",
    "java.rmi/sun.rmi.server",
    "java.sql/java.sql",
    "java.base/java.lang.ref",
    "jdk.unsupported/sun.misc",
    "java.management/com.sun.jmx.remote.security",
    "jdk.attach/sun.tools.attach",
    "jdk.compiler/com.sun.tools.javac.file",
)
_ADD_OPENS = (
    "java.base/java.lang.module",
    "java.base/jdk.internal.loader",
    "java.base/jdk.internal.ref",
    "java.base/jdk.internal.reflect",
    "java.base/jdk.internal.math",
    "java.base/jdk.internal.module",
    "java.base/jdk.internal.util.jar",
    "jdk.management/com.sun.management.internal",
    "java.base/sun.nio.ch",
    "java.base/java.io",
    "java.base/java.lang.reflect",
    "java.base/java.lang",
    "java.base/java.util",
    "java.base/java.nio",
    "jdk.compiler/com.sun.tools.javac",
)
_NETTY_FLAGS = (
    "-Dio.netty.tryReflectionSetAccessible=true",
    "-Dio.netty.allocator.useCacheForAllThreads=true",
    "-Dio.netty.allocator.maxOrder=11",
)


class CassandraLaunchError(RuntimeError):
    """A node could not be resolved, started or stopped; the message says what to do about it."""


@dataclass(frozen=True)
class CassandraNodeSpec:
    """One node of a local cluster; everything the node writes lives under `node_dir`."""

    index: int
    """1-based position in the cluster: names `nodeN` and picks the JMX port 7199 + index - 1."""
    address: str
    """Listen, RPC and CQL address; distinct per node so all nodes share the same ports."""
    base_dir: Path
    """Folder holding every `nodeN` directory (`$REELSTREAM_VAR_DIR/cassandra`)."""
    initial_token: int
    """The node's single Murmur3 token; pre-assigned so no node waits for token allocation."""
    heap_mb: int = 768
    """-Xms/-Xmx: without it the JVM would take a quarter of the machine's RAM per node."""
    memtable_heap_mb: int | None = None
    """memtable_heap_space; None: a third of the heap (the yaml below says why)."""
    cql_port: int = 9042
    """native_transport_port; the same on every node (nodes differ by address)."""
    storage_port: int = 7000
    """Gossip and internode messaging port; the same on every node."""
    seeds: tuple[str, ...] = (SEED_ADDRESS,)
    """Gossip contact points; node 1 is the only seed, so it must be up before the others."""
    cluster_name: str = "reelstream"
    """Stored in the system keyspace: a node refuses to start on data of another cluster name."""

    @property
    def name(self) -> str:
        return f"node{self.index}"

    @property
    def memtable_heap_space_mb(self) -> int:
        return self.heap_mb // 3 if self.memtable_heap_mb is None else self.memtable_heap_mb

    @property
    def node_dir(self) -> Path:
        return self.base_dir / self.name

    @property
    def data_dir(self) -> Path:
        """Everything `wipe` deletes: data, commitlog, saved caches, hints and CDC."""
        return self.node_dir / "data"

    @property
    def log_dir(self) -> Path:
        return self.node_dir / "logs"

    @property
    def config_file(self) -> Path:
        return self.node_dir / "conf" / "cassandra.yaml"

    @property
    def pid_file(self) -> Path:
        return self.node_dir / "cassandra.pid"

    @property
    def jmx_port(self) -> int:
        return 7199 + self.index - 1


def default_base_dir() -> Path:
    """`$REELSTREAM_VAR_DIR/cassandra`, by default `<repo>/var/cassandra` (git-ignored)."""
    return local_process.var_dir() / "cassandra"


def default_cache_dir() -> Path:
    """`$REELSTREAM_CACHE_DIR`, default `~/.cache/reelstream`: outlives `wipe`, shared by runs."""
    return Path(os.environ.get("REELSTREAM_CACHE_DIR", Path.home() / ".cache" / "reelstream"))


def find_java() -> Path:
    """JAVA_HOME's java, else the Debian Java 17, else `java` on PATH (5.0 needs Java 11 or 17)."""
    java_home = os.environ.get("JAVA_HOME")
    on_path = shutil.which("java")
    candidates = [Path(java_home) / "bin" / "java"] if java_home else []
    candidates += [JAVA_17] + ([Path(on_path)] if on_path else [])
    for candidate in candidates:
        if candidate.is_file() and os.access(candidate, os.X_OK):
            return candidate
    raise CassandraLaunchError(f"no Java found (JAVA_HOME, {JAVA_17}, PATH); run: {INSTALL_HINT}")


def _read_classpath(listing: Path) -> list[Path] | None:
    """The jars a listing names, or None when it is absent or names a jar that is gone."""
    try:
        text = listing.read_text().strip()
    except FileNotFoundError:
        return None
    jars = [Path(entry) for entry in text.split(os.pathsep) if entry]
    return jars if jars and all(jar.is_file() for jar in jars) else None


def resolve_classpath(cache_dir: Path) -> list[Path]:
    """Returns Cassandra's runtime jars, resolving them with Maven only when the cache lacks them.

    The listing is written to a temporary file and renamed, so an interrupted `mvn` never
    leaves a half-written listing that later runs would trust.
    """
    listing = cache_dir / f"classpath-{CASSANDRA_VERSION}.txt"
    cached = _read_classpath(listing)
    if cached is not None:
        return cached
    mvn = shutil.which("mvn")
    if mvn is None:
        raise CassandraLaunchError(f"Maven (`mvn`) is not installed; run: {INSTALL_HINT}")
    find_java()
    cache_dir.mkdir(parents=True, exist_ok=True)
    partial = listing.with_name(f"{listing.name}.{os.getpid()}.tmp")
    print(
        f"resolving Cassandra {CASSANDRA_VERSION} from Maven Central into {cache_dir} ...",
        flush=True,
    )
    started = time.monotonic()
    command = [
        mvn,
        "-B",
        "-q",
        "-f",
        str(POM_FILE),
        f"-Dmaven.repo.local={cache_dir / 'm2'}",
        "dependency:build-classpath",
        f"-Dmdep.outputFile={partial}",
    ]
    try:
        result = subprocess.run(command, capture_output=True, text=True, timeout=1800, check=False)
        jars = _read_classpath(partial) if result.returncode == 0 else None
        if jars is None:
            output = "\n".join((result.stdout + result.stderr).splitlines()[-30:])
            raise CassandraLaunchError(f"mvn failed (exit {result.returncode}):\n{output}")
        partial.replace(listing)
    except subprocess.TimeoutExpired as exc:
        raise CassandraLaunchError(f"mvn did not finish within {exc.timeout:.0f} s") from exc
    finally:
        partial.unlink(missing_ok=True)
    print(f"resolved {len(jars)} jars in {time.monotonic() - started:.1f} s", flush=True)
    return jars


def cluster_specs(nodes: int, base_dir: Path, heap_mb: int = 768) -> list[CassandraNodeSpec]:
    """Specs for an `nodes`-node cluster on 127.0.0.1..N with evenly spaced Murmur3 tokens.

    Node 1 always gets the minimum token, so its data stays valid whatever the cluster size.
    """
    if not 1 <= nodes <= 9:
        raise CassandraLaunchError(f"--nodes must be between 1 and 9, got {nodes}")
    return [
        CassandraNodeSpec(
            index=i + 1,
            address=f"127.0.0.{i + 1}",
            base_dir=base_dir,
            initial_token=_MIN_TOKEN + (2**64 * i) // nodes,
            heap_mb=heap_mb,
        )
        for i in range(nodes)
    ]


def render_cassandra_yaml(spec: CassandraNodeSpec) -> str:
    """A minimal 5.0 cassandra.yaml (unit-suffixed keys; unknown keys make Cassandra refuse)."""
    data = spec.data_dir
    seeds = ",".join(f"{seed}:{spec.storage_port}" for seed in spec.seeds)
    return f"""\
# Written by reelstream.infra.cassandra_node at every start; edit the module, not this file.
cluster_name: {spec.cluster_name}
num_tokens: 1
initial_token: {spec.initial_token}
auto_bootstrap: false
partitioner: org.apache.cassandra.dht.Murmur3Partitioner
endpoint_snitch: org.apache.cassandra.locator.SimpleSnitch
seed_provider:
  - class_name: org.apache.cassandra.locator.SimpleSeedProvider
    parameters:
      - seeds: "{seeds}"
listen_address: {spec.address}
rpc_address: {spec.address}
storage_port: {spec.storage_port}
start_native_transport: true
native_transport_port: {spec.cql_port}
data_file_directories:
  - {data / "data"}
commitlog_directory: {data / "commitlog"}
saved_caches_directory: {data / "saved_caches"}
hints_directory: {data / "hints"}
cdc_raw_directory: {data / "cdc_raw"}
# group (like batch): a write is acknowledged only after its commitlog section is fsynced.
# With the default (periodic, 10 s) a kill -9 lost acknowledged writes: the replay after
# restart stops at the last sync marker (65 of 2,000 acknowledged rows gone in a probe), and
# the counter's exactly-once protocol relies on acknowledged batch rows and LWTs being
# durable. Group mode waits up to the window between fsyncs, so concurrent writes share
# them: an LWT syncs at each Paxos step, and 24 LWTs/s cost the benchmark's node 0.29-0.36
# cores against 0.43-0.48 with batch (ad hoc, docs/benchmarks.md, session 18).
commitlog_sync: group
commitlog_sync_group_window: 10ms
# A mutation thread blocks until the commitlog sync covering its write (batch and group), so
# write throughput is about concurrent_writes / sync time: 32 threads capped a loaded node
# at ~1,700 mutations/s with 86 queued (system_views.thread_pools); more threads share
# each fsync.
concurrent_writes: 128
# Paxos v2 (Cassandra 4.1+): fewer round trips per LWT, and every counter commit is one
# (counter/store.py). Its effect here was not measured on its own.
paxos_variant: v2
commitlog_segment_size: 32MiB
auto_snapshot: false
# Memtables hold what the counters write until it dies: a batch payload (shard_batches) is
# deleted once a snapshot covers it, 3-6 minutes later under load, and every snapshot
# rewrites each reel's row (reel_state). With 128 MiB on the heap they flushed every ~20 s
# (payloads arrive at ~0.75 MB/s at 86,982 events/s), every payload reached an sstable and
# was compacted, and Cassandra took 0.64 cores (median) in a 300 s soak; 0.54 with off-heap
# trie memtables (cells in off-heap buffers, allocated as used, not reserved). The heap
# pool still bounds reel_state (one partition per reel): at 128 MiB it flushed every
# minute and size-tiered compaction merged it every ~3 minutes, up to 23 s at a full core,
# which starved the shards 20 minutes into an hour-long soak; a third of the heap (256 MiB
# of 768) halves the flushes.
# Flushes and compactions are bursts on a 2-core machine (after a forced 370 MiB flush the
# shards drained half the load for a 30 s window), hence the compaction throttle: 2 MiB/s
# is ~5x the soak's need (~65 MiB of reel_state merged every ~3 minutes). A crash
# replays more commitlog. docs/reliability.md, session 9.
memtable:
  configurations:
    skiplist:
      class_name: SkipListMemtable
    trie:
      class_name: TrieMemtable
    default:
      inherits: trie
memtable_allocation_type: offheap_objects
memtable_heap_space: {spec.memtable_heap_space_mb}MiB
memtable_offheap_space: {MEMTABLE_OFFHEAP_SPACE_MIB}MiB
memtable_cleanup_threshold: 0.85
key_cache_size: 16MiB
row_cache_size: 0MiB
counter_cache_size: 8MiB
prepared_statements_cache_size: 8MiB
concurrent_compactors: 1
compaction_throughput: 2MiB/s
batch_size_warn_threshold: 1024KiB
# Counter roll-ups write up to 64 reels (partitions) per unlogged batch by default
# (counter/store.py; up to 256 when configured).
unlogged_batch_across_partitions_warn_threshold: 256
batch_size_fail_threshold: 5120KiB
read_request_timeout: 5000ms
range_request_timeout: 10000ms
write_request_timeout: 5000ms
counter_write_request_timeout: 5000ms
cas_contention_timeout: 2000ms
truncate_request_timeout: 60000ms
request_timeout: 10000ms
"""


def render_logback_xml(spec: CassandraNodeSpec) -> str:
    """INFO to `logs/system.log` (rolled at 20 MB), only WARN+ to the console (`stdout.log`)."""
    log = spec.log_dir / "system.log"
    pattern = "%-5level [%thread] %date{ISO8601} %F:%L - %msg%n"
    return f"""\
<configuration scan="false">
  <appender name="SYSTEMLOG" class="ch.qos.logback.core.rolling.RollingFileAppender">
    <file>{log}</file>
    <rollingPolicy class="ch.qos.logback.core.rolling.FixedWindowRollingPolicy">
      <fileNamePattern>{log}.%i.zip</fileNamePattern><minIndex>1</minIndex><maxIndex>5</maxIndex>
    </rollingPolicy>
    <triggeringPolicy class="ch.qos.logback.core.rolling.SizeBasedTriggeringPolicy">
      <maxFileSize>20MB</maxFileSize>
    </triggeringPolicy>
    <encoder><pattern>{pattern}</pattern></encoder>
  </appender>
  <appender name="STDOUT" class="ch.qos.logback.core.ConsoleAppender">
    <filter class="ch.qos.logback.classic.filter.ThresholdFilter"><level>WARN</level></filter>
    <encoder><pattern>{pattern}</pattern></encoder>
  </appender>
  <root level="INFO"><appender-ref ref="SYSTEMLOG"/><appender-ref ref="STDOUT"/></root>
</configuration>
"""


def jvm_command(spec: CassandraNodeSpec, java: Path, classpath: Sequence[Path]) -> list[str]:
    """The `java -cp` command line for one node (what bin/cassandra would otherwise assemble)."""
    jamm = next((jar for jar in classpath if jar.name.startswith("jamm-")), None)
    if jamm is None:
        raise CassandraLaunchError("jamm jar missing from the resolved classpath")
    conf = spec.config_file.parent
    return [
        str(java),
        f"-Xms{spec.heap_mb}m",
        f"-Xmx{spec.heap_mb}m",
        # As Cassandra's own jvm-server.options: the whole heap is resident from the start,
        # so the node's RSS grows only with what lives outside it.
        "-XX:+AlwaysPreTouch",
        "-XX:+UseG1GC",
        "-XX:+ExitOnOutOfMemoryError",
        # As Cassandra's own conf/cassandra-env.sh does: every pause with its phases and
        # CPU (user/sys against real time shows a collector starved of cores), in gc.log.
        f"-Xlog:gc*=info:file={spec.log_dir / 'gc.log'}:time,uptime:filecount=5,filesize=10m",
        "-Djdk.attach.allowAttachSelf=true",
        *(f"--add-exports={module}=ALL-UNNAMED" for module in _ADD_EXPORTS),
        *(f"--add-opens={module}=ALL-UNNAMED" for module in _ADD_OPENS),
        *_NETTY_FLAGS,
        f"-javaagent:{jamm}",
        f"-Dcassandra.config={spec.config_file.as_uri()}",
        "-Dcassandra-foreground=yes",
        f"-Dcassandra.storagedir={spec.data_dir}",
        f"-Dcassandra.logdir={spec.log_dir}",
        f"-Dcassandra.triggers_dir={conf / 'triggers'}",
        f"-Dlogback.configurationFile={conf / 'logback.xml'}",
        "-Djava.net.preferIPv4Stack=true",
        "-Dcassandra.skip_wait_for_gossip_to_settle=0",
        "-Dcassandra.ring_delay_ms=1000",
        "-Dcassandra.superuser_setup_delay_ms=1000",
        f"-Dcassandra.jmx.local.port={spec.jmx_port}",
        "-cp",
        os.pathsep.join(str(jar) for jar in classpath),
        MAIN_CLASS,
    ]
