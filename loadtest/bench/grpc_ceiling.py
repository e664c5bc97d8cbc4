"""The ceiling: a gRPC server that parses the same batches as an edge and does nothing else.

It is the upper bound of any Python grpc.aio edge on this machine: same server options and
event loop as the real shell (uvloop, `reelstream.service_shell.server_options()`), the
generated `EventBatch` parser, an answer `accepted = len(reel_ids)`, no validation, no
journal. It runs as separate processes (as many as the pipeline has edges, so both get the
same number of server processes) on 127.0.0.1:50081+i, driven by the very driver that drives
the edges. `python -m loadtest.bench.grpc_ceiling --port P` serves until SIGTERM.
"""

from __future__ import annotations

import argparse
import asyncio
import signal
import subprocess
import sys
from typing import Any

import grpc
import uvloop
from grpc import aio

from loadtest.bench.figures import PhaseFigures
from loadtest.bench.grpc_driver import DriveResult, EdgeTargets, drive_closed_loop
from loadtest.bench.process_monitor import ProcessMonitor
from loadtest.bench.settings import REPO_ROOT, BenchSettings
from loadtest.bench.workload import BatchPool
from protos import common_pb2, edge_pb2
from reelstream.service_shell import server_options

BASE_PORT = 50081
DESIGN = "do-nothing gRPC ceiling"
PHASE = "grpc-ceiling"


async def send_events(
    request: common_pb2.EventBatch, context: aio.ServicerContext[Any, Any]
) -> edge_pb2.SendEventsResponse:
    """Accepts every event of the batch without looking at it."""
    return edge_pb2.SendEventsResponse(accepted=len(request.reel_ids))


def do_nothing_handler() -> grpc.GenericRpcHandler:
    """EdgeService with SendEvents only (the generated servicer would demand every method)."""
    return grpc.method_handlers_generic_handler(
        "reelstream.v1.EdgeService",
        {
            "SendEvents": grpc.unary_unary_rpc_method_handler(
                send_events,
                request_deserializer=common_pb2.EventBatch.FromString,
                response_serializer=edge_pb2.SendEventsResponse.SerializeToString,
            )
        },
    )


async def serve(port: int) -> None:
    server = aio.server(options=server_options(), maximum_concurrent_rpcs=2000)
    server.add_generic_rpc_handlers((do_nothing_handler(),))
    if server.add_insecure_port(f"127.0.0.1:{port}") == 0:
        raise SystemExit(f"cannot bind 127.0.0.1:{port}")
    await server.start()
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stop.set)
    await stop.wait()
    await server.stop(1.0)


class CeilingServers:
    """The do-nothing server processes, children of the benchmark, stopped by `stop()`."""

    def __init__(self, count: int) -> None:
        self.addresses = [f"127.0.0.1:{BASE_PORT + i}" for i in range(count)]
        self.processes: list[subprocess.Popen[bytes]] = []

    def start(self) -> None:
        for address in self.addresses:
            port = address.rsplit(":", 1)[1]
            self.processes.append(
                subprocess.Popen(
                    [sys.executable, "-m", "loadtest.bench.grpc_ceiling", "--port", port],
                    cwd=REPO_ROOT,
                )
            )

    @property
    def pids(self) -> list[int]:
        return [p.pid for p in self.processes]

    def stop(self) -> None:
        for process in self.processes:
            if process.poll() is None:
                process.terminate()
        for process in self.processes:
            try:
                process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait(timeout=10)
        self.processes.clear()


async def _drive(
    addresses: list[str], pool: BatchPool, settings: BenchSettings, monitor: ProcessMonitor
) -> DriveResult:
    targets = EdgeTargets(addresses)
    try:
        await targets.wait_ready()
        await drive_closed_loop(targets, pool, settings.warmup_s, settings.inflight, "warm")
        with monitor.phase(PHASE):
            return await drive_closed_loop(
                targets, pool, settings.seconds, settings.inflight, PHASE
            )
    finally:
        await targets.close()


def run_ceiling(
    settings: BenchSettings, pool: BatchPool, monitor: ProcessMonitor, runner: asyncio.Runner
) -> PhaseFigures:
    """Starts the do-nothing servers, drives them like the edges, stops them."""
    servers = CeilingServers(settings.edges)
    servers.start()
    try:
        for index, pid in enumerate(servers.pids):
            monitor.track(f"ceiling-server-{index}", pid)
        result = runner.run(_drive(servers.addresses, pool, settings, monitor))
    finally:
        monitor.untrack("ceiling-server-")
        servers.stop()
    figures = PhaseFigures(
        design=DESIGN,
        scenario=f"zipf, {settings.edges} server processes, closed loop",
        events_per_s=result.events_per_s,
        duration_s=result.elapsed_s,
        events=result.events,
        ack_p50_ms=result.latency_ms(0.5),
        ack_p99_ms=result.latency_ms(0.99),
        cpu_cores=monitor.cpu_summary(PHASE),
        errors=dict(result.errors),
        notes=f"{result.calls:,} calls",
    )
    print(f"  ceiling: {figures.events_per_s:,.0f} ev/s", flush=True)
    return figures


def main() -> None:
    parser = argparse.ArgumentParser(description="A do-nothing EdgeService for the benchmark.")
    parser.add_argument("--port", type=int, default=BASE_PORT)
    args = parser.parse_args()
    with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
        runner.run(serve(args.port))


if __name__ == "__main__":
    main()
