"""Records a real edge's and counter process's metrics through a load spike, for
tests/unit/test_autoscale_recorded.py (edge) and tests/unit/test_autoscale_counter_recorded.py
(counter).

Starts one counter process (serving every logical shard) and one edge on free loopback ports
(keyspace `autoscale_recording`, dropped afterwards; the shared Cassandra on 127.0.0.1:9042
and a Redis on `--redis-port` must be running), sends calm traffic (~200 events/s), a spike
(as fast as `--spike-threads` threads can send 1,000-event batches), calm again, and records
both processes' /metrics every second with `reelstream.metrics_recorder` (replicas `edge-0`
and `counter-0`; the counter's load is what the edge forwards: its journal drains into it).
Bounded: about `--calm + --spike + --calm-after` seconds.

    REELSTREAM_VAR_DIR=... .venv/bin/python scripts/record_autoscale_spike.py --out FILE.csv

The services and the senders use mutual TLS with the certificates of `make certs`, or
plaintext with REELSTREAM_PLAINTEXT=1 (docs/security.md).
"""

from __future__ import annotations

import argparse
import itertools
import os
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

from cassandra.cluster import Cluster

from protos import common_pb2, edge_pb2_grpc
from reelstream.caller_policy import APP
from reelstream.channels import open_blocking_channel
from reelstream.metrics_recorder import DEFAULT_METRICS, record
from reelstream.stack import health

KEYSPACE = "autoscale_recording"
COUNTER_METRICS = (
    "counter_pending_batches",
    "counter_commit_seconds_sum",
    "counter_commit_seconds_count",
    "counter_batches_applied_total",
)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def start(module: str, env: dict[str, str], log: Path) -> subprocess.Popen[bytes]:
    with log.open("ab") as handle:
        return subprocess.Popen(
            [sys.executable, "-m", module],
            env={**os.environ, **env},
            stdout=handle,
            stderr=subprocess.STDOUT,
        )


def wait_serving(address: str, timeout_s: float = 120.0) -> None:
    deadline = time.monotonic() + timeout_s
    while health(address) != "SERVING":
        if time.monotonic() > deadline:
            raise RuntimeError(f"{address} not SERVING")
        time.sleep(0.3)


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--redis-port", type=int, default=6399)
    parser.add_argument("--calm", type=float, default=15.0)
    parser.add_argument("--spike", type=float, default=25.0)
    parser.add_argument("--calm-after", type=float, default=45.0)
    parser.add_argument("--spike-threads", type=int, default=3)
    args = parser.parse_args()
    logs = args.out.parent
    counter_address, edge_address = f"127.0.0.1:{free_port()}", f"127.0.0.1:{free_port()}"
    metrics_port, counter_metrics_port = free_port(), free_port()
    counter = start(
        "counter",
        {
            "REELSTREAM_COUNTER_NAME": "counter-0",
            "REELSTREAM_COUNTER_GRPC_ADDRESS": counter_address,
            "REELSTREAM_COUNTER_METRICS_PORT": str(counter_metrics_port),
            "REELSTREAM_COUNTER_KEYSPACE": KEYSPACE,
            "REELSTREAM_COUNTER_OWNER_ID": "recording",
        },
        logs / "recording-counter.log",
    )
    edge = start(
        "edge",
        {
            "REELSTREAM_EDGE_NAME": f"recording-{os.getpid()}",
            "REELSTREAM_EDGE_GRPC_ADDRESS": edge_address,
            "REELSTREAM_EDGE_METRICS_PORT": str(metrics_port),
            "REELSTREAM_EDGE_REDIS_URL": f"redis://127.0.0.1:{args.redis_port}/0",
            "REELSTREAM_EDGE_COUNTER_ADDRESSES": counter_address,
            "REELSTREAM_EDGE_VALIDATE_REELS": "false",
            "REELSTREAM_EDGE_KEYSPACE": KEYSPACE,  # its registry row goes with the keyspace
        },
        logs / "recording-edge.log",
    )
    try:
        wait_serving(counter_address)
        wait_serving(edge_address)
        users = itertools.count(1)
        lock = threading.Lock()
        spike_on = threading.Event()
        stop = threading.Event()

        def batch(size: int) -> common_pb2.EventBatch:
            with lock:
                ids = [next(users) for _ in range(size)]
            return common_pb2.EventBatch(
                reel_ids=[(i % 5000) + 1 for i in ids],
                user_ids=ids,
                kinds=[common_pb2.EVENT_KIND_VIEW] * size,
                watch_ms=[5000] * size,
            )

        def calm_sender() -> None:
            with open_blocking_channel(edge_address, APP) as channel:
                stub = edge_pb2_grpc.EdgeServiceStub(channel)
                while not stop.is_set():
                    stub.SendEvents(batch(20), timeout=10)
                    stop.wait(0.1)

        def spike_sender() -> None:
            with open_blocking_channel(edge_address, APP) as channel:
                stub = edge_pb2_grpc.EdgeServiceStub(channel)
                while not stop.is_set():
                    if spike_on.is_set():
                        stub.SendEvents(batch(1000), timeout=10)
                    else:
                        spike_on.wait(0.2)

        senders = [threading.Thread(target=calm_sender, daemon=True)]
        senders += [
            threading.Thread(target=spike_sender, daemon=True) for _ in range(args.spike_threads)
        ]
        for sender in senders:
            sender.start()
        total = args.calm + args.spike + args.calm_after
        urls = {
            "edge-0": f"http://127.0.0.1:{metrics_port}/metrics",
            "counter-0": f"http://127.0.0.1:{counter_metrics_port}/metrics",
        }
        recorder = threading.Thread(
            target=record,
            args=(urls, args.out, total),
            kwargs={"metrics": (*DEFAULT_METRICS, *COUNTER_METRICS)},
        )
        recorder.start()
        time.sleep(args.calm)
        spike_on.set()
        time.sleep(args.spike)
        spike_on.clear()
        recorder.join(timeout=args.calm_after + 30)
        stop.set()
        for sender in senders:
            sender.join(timeout=15)
    finally:
        for process in (edge, counter):
            process.terminate()
            try:
                process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                process.kill()
        cluster = Cluster(["127.0.0.1"], protocol_version=5)
        try:
            cluster.connect().execute(f"DROP KEYSPACE IF EXISTS {KEYSPACE}", timeout=60)
        finally:
            cluster.shutdown()
    print(f"recorded {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
