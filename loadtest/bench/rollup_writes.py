"""`make bench-rollup`: what a counter shard's roll-up (snapshot) costs per reel, by how
many reels go into one Cassandra request (`snapshot_reels_per_write`).

Under sustained load the roll-ups are what falls behind (docs/architecture.md), so their
cost per reel is the figure to watch. Each round applies batches that touch `reels`
distinct reels through a real `CounterShard` (lease, group commit) on the benchmark's own
Cassandra node, then times one unpaced `snapshot()`: the shard's own code path, copy
included. Reported per variant: reels/s (wall), the benchmark process's CPU per reel (the
shard and the driver's I/O thread) and Cassandra's CPU per reel, medians over rounds run
alternately so the machine's noise falls on every variant alike. Also checks that a new
owner reads back exactly what was written. Writes `results/bench-rollup.json` and the
roll-up section of docs/benchmarks.md.
"""

from __future__ import annotations

import asyncio
import json
import os
import statistics
import sys
import time
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime

import psutil

from counter.config import CounterConfig
from counter.shard_owner import CounterShard
from counter.store import CounterStore
from loadtest.bench import bench_cassandra
from loadtest.bench.doc_sections import replace_section
from loadtest.bench.machine import describe_machine
from loadtest.bench.settings import REPO_ROOT
from protos import counter_pb2
from reelstream.cassandra_client import CassandraClient, CassandraSettings
from reelstream.schema import apply_schema

RESULTS_JSON = REPO_ROOT / "results" / "bench-rollup.json"
VARIANTS = (1, 16, 32, 64, 128)
EDGE = "bench-rollup.1"
# Reels per applied batch, like a busy edge's flush.
REELS_PER_BATCH = 1_000


@dataclass
class Measured:
    reels_per_write: int
    reels_per_s: list[float] = field(default_factory=list)
    client_cpu_us: list[float] = field(default_factory=list)
    cassandra_cpu_us: list[float] = field(default_factory=list)

    def summary(self) -> dict[str, float | int]:
        def med(values: list[float]) -> float:
            return round(statistics.median(values), 1)

        return {
            "reels_per_write": self.reels_per_write,
            "reels_per_s": med(self.reels_per_s),
            "reels_per_s_min": round(min(self.reels_per_s), 1),
            "reels_per_s_max": round(max(self.reels_per_s), 1),
            "client_cpu_us_per_reel": med(self.client_cpu_us),
            "cassandra_cpu_us_per_reel": med(self.cassandra_cpu_us),
        }


def cold_batch(seq: int, first_reel: int, minute: int) -> counter_pb2.ApplyBatchRequest:
    """`REELS_PER_BATCH` reels, 2 views and 2 distinct viewers each: the cold tail of a
    Zipf workload, where nearly every dirty reel is one of these."""
    reels = list(range(first_reel, first_reel + REELS_PER_BATCH))
    return counter_pb2.ApplyBatchRequest(
        batch_id=counter_pb2.BatchId(edge_id=EDGE, shard=0, seq=seq),
        view_reel_ids=reels,
        view_minutes=[minute] * len(reels),
        view_counts=[2] * len(reels),
        viewer_reel_ids=[reel for reel in reels for _ in range(2)],
        viewer_user_ids=[reel * 2 + k for reel in reels for k in range(2)],
    )


async def one_round(
    client: CassandraClient,
    reels_per_write: int,
    first_reel: int,
    reels: int,
    cassandra: psutil.Process,
) -> tuple[float, float, float]:
    """Applies batches over reels never written before, then times one snapshot of them."""
    config = CounterConfig(
        shard_count=1,
        owner_id=f"bench-rollup-{uuid.uuid4().hex[:6]}",
        snapshot_reels_per_write=reels_per_write,
    )
    store = CounterStore(client, shard=0)
    await store.prepare()
    shard = CounterShard(config, store)
    await shard.acquire()
    committer = asyncio.create_task(shard.run_committer())
    try:
        seq = shard.applied_seq.get(EDGE, 0)
        minute = int(time.time() // 60)
        for start in range(0, reels, REELS_PER_BATCH):
            seq += 1
            await shard.apply(cold_batch(seq, first_reel + start, minute))
        cpu_before = time.process_time()
        cassandra_before = sum(cassandra.cpu_times()[:2])
        started = time.perf_counter()
        await shard.snapshot(paced=False)
        wall = time.perf_counter() - started
        client_cpu = time.process_time() - cpu_before
        cassandra_cpu = sum(cassandra.cpu_times()[:2]) - cassandra_before
    finally:
        shard.stop_accepting()
        await asyncio.gather(committer, return_exceptions=True)
        await shard.release()
    await check_read_back(client, config, first_reel, reels)
    return reels / wall, client_cpu / reels * 1e6, cassandra_cpu / reels * 1e6


async def check_read_back(
    client: CassandraClient, config: CounterConfig, first_reel: int, reels: int
) -> None:
    """A new owner sees every reel of the round with its 2 views: nothing lost or doubled."""
    store = CounterStore(client, shard=0)
    await store.prepare()
    sample = list(range(first_reel, first_reel + reels, max(1, reels // 200)))
    stored = await store.read_reels(sample)
    wrong = [r.reel_id for r in stored if r.record.views != 2 or r.record.viewers.count() != 2]
    if len(stored) != len(sample) or wrong:
        raise SystemExit(
            f"roll-up read back wrong: {len(sample) - len(stored)} missing, wrong {wrong[:5]}"
        )


async def run(reels: int, rounds: int) -> list[Measured]:
    keyspace = f"bench_rollup_{uuid.uuid4().hex[:8]}"
    client = CassandraClient(CassandraSettings((bench_cassandra.ADDRESS,), 9042, keyspace))
    await client.connect(max_wait_s=120)
    await apply_schema(client)
    cassandra_pid = bench_cassandra.pid()
    if cassandra_pid is None:
        raise SystemExit("the benchmark's Cassandra is not running")
    cassandra = psutil.Process(cassandra_pid)
    measured = {variant: Measured(variant) for variant in VARIANTS}
    try:
        print("warm-up round (not counted) ...", flush=True)
        await one_round(client, 32, 1, reels, cassandra)
        first_reel = 1 + reels
        for number in range(1, rounds + 1):
            for variant in VARIANTS:
                rate, client_us, cassandra_us = await one_round(
                    client, variant, first_reel, reels, cassandra
                )
                first_reel += reels
                m = measured[variant]
                m.reels_per_s.append(rate)
                m.client_cpu_us.append(client_us)
                m.cassandra_cpu_us.append(cassandra_us)
                print(
                    f"round {number}/{rounds}  {variant:3d} reels/write  {rate:8,.0f} reels/s"
                    f"  counter {client_us:5.0f} us/reel  cassandra {cassandra_us:5.0f} us/reel",
                    flush=True,
                )
    finally:
        await client.close()
    return list(measured.values())


def markdown(rows: list[dict[str, float | int]], context: dict[str, object]) -> str:
    base = next(row for row in rows if row["reels_per_write"] == 1)
    lines = [
        "## Counter roll-ups (`make bench-rollup`)",
        "",
        f"Command: `{context['command']}`; {context['started']}, {context['reels']:,} cold"
        f" reels per round (2 views, 2 viewers, 3 buckets each), {context['rounds']} rounds"
        f" per variant run alternately on the benchmark's own Cassandra node; load average"
        f" at start {context['load_average']}. Medians; min-max of the rate in brackets. A"
        " request also stops at 512 rows, so the 128 row carries ~100 of these 5-row reels.",
        "",
        "| reels per request | reels/s | counter CPU us/reel | Cassandra CPU us/reel | rate vs 1 |",
        "|---:|---:|---:|---:|---:|",
    ]
    for row in rows:
        lines.append(
            f"| {row['reels_per_write']} | {row['reels_per_s']:,.0f}"
            f" ({row['reels_per_s_min']:,.0f}-{row['reels_per_s_max']:,.0f})"
            f" | {row['client_cpu_us_per_reel']:.0f} | {row['cassandra_cpu_us_per_reel']:.0f}"
            f" | {float(row['reels_per_s']) / float(base['reels_per_s']):.2f}x |"
        )
    return "\n".join(lines) + "\n"


def main() -> int:
    reels = int(os.environ.get("BENCH_ROLLUP_REELS", "20000"))
    rounds = int(os.environ.get("BENCH_ROLLUP_ROUNDS", "3"))
    machine = describe_machine()
    started = datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC")
    print(f"bench-rollup: {reels:,} reels x {rounds} rounds x {len(VARIANTS)} variants", flush=True)
    bench_cassandra.up()
    try:
        measured = asyncio.run(run(reels, rounds))
    finally:
        bench_cassandra.down()
    rows = [m.summary() for m in measured]
    context = {
        "command": "make bench-rollup"
        + (f" BENCH_ROLLUP_REELS={reels}" if reels != 20000 else "")
        + (f" BENCH_ROLLUP_ROUNDS={rounds}" if rounds != 3 else ""),
        "started": started,
        "reels": reels,
        "rounds": rounds,
        "load_average": machine["load_average_at_start"],
    }
    RESULTS_JSON.parent.mkdir(parents=True, exist_ok=True)
    RESULTS_JSON.write_text(json.dumps({**context, "variants": rows}, indent=2) + "\n")
    replace_section("rollup", markdown(rows, context))
    print(markdown(rows, context))
    return 0


if __name__ == "__main__":
    sys.exit(main())
