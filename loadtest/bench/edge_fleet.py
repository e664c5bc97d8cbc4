"""Edge processes for the video benchmark: `workers` real edge processes sharing one HTTP
port through SO_REUSEPORT (the kernel spreads connections over them), which is how an edge
node uses more than one core: one process per core, each with its own segment cache."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import urllib.request
from pathlib import Path

from loadtest.bench.http_load import wait_http
from loadtest.bench.settings import REPO_ROOT


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class EdgeFleet:
    def __init__(
        self,
        name: str,
        workers: int,
        origin_address: str,
        redis_url: str,
        log_dir: Path,
        cache_bytes: int = 256 * 1024 * 1024,
    ) -> None:
        self.name = name
        self.workers = workers
        self.http_port = free_port()
        self._origin_address = origin_address
        self._redis_url = redis_url
        self._log_dir = log_dir
        self._cache_bytes = cache_bytes
        self._processes: list[subprocess.Popen[bytes]] = []
        self._metrics_ports = [free_port() for _ in range(workers)]

    def metric_total(self, name: str) -> float:
        """The sum of an unlabelled or labelled counter over every worker."""
        total = 0.0
        for port in self._metrics_ports:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as reply:
                for line in reply.read().decode().splitlines():
                    if line.startswith(name) and not line.startswith("#"):
                        total += float(line.rsplit(" ", 1)[1])
        return total

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.http_port}"

    def _env(self, worker: int) -> dict[str, str]:
        return {
            **os.environ,
            "REELSTREAM_EDGE_NAME": f"{self.name}-{worker}",
            "REELSTREAM_EDGE_GRPC_ADDRESS": f"127.0.0.1:{free_port()}",
            "REELSTREAM_EDGE_METRICS_PORT": str(self._metrics_ports[worker]),
            "REELSTREAM_EDGE_REDIS_URL": self._redis_url,
            "REELSTREAM_EDGE_COUNTER_ADDRESSES": "127.0.0.1:1",
            "REELSTREAM_EDGE_VALIDATE_REELS": "false",
            "REELSTREAM_EDGE_ORIGIN_ADDRESS": self._origin_address,
            "REELSTREAM_EDGE_HTTP_ADDRESS": f"127.0.0.1:{self.http_port}",
            "REELSTREAM_EDGE_HTTP_REUSE_PORT": "true",
            "REELSTREAM_EDGE_SEGMENT_CACHE_BYTES": str(self._cache_bytes),
            "REELSTREAM_EDGE_LOG_LEVEL": "WARNING",
        }

    def __enter__(self) -> EdgeFleet:
        self._log_dir.mkdir(parents=True, exist_ok=True)
        for worker in range(self.workers):
            with (self._log_dir / f"{self.name}-{worker}.log").open("ab") as log:
                self._processes.append(
                    subprocess.Popen(
                        [sys.executable, "-m", "edge", f"--label={self.name}-{worker}"],
                        cwd=REPO_ROOT,
                        env=self._env(worker),
                        stdout=log,
                        stderr=subprocess.STDOUT,
                    )
                )
        try:
            # Metrics answer once a worker's HTTP site listens (it starts first).
            for port in self._metrics_ports:
                wait_http(f"http://127.0.0.1:{port}/metrics", timeout_s=120)
            wait_http(f"{self.base_url}/healthz", timeout_s=10)
        except BaseException:
            self.__exit__()
            raise
        return self

    def __exit__(self, *exc: object) -> None:
        for process in self._processes:
            if process.poll() is None:
                process.send_signal(signal.SIGTERM)
        for process in self._processes:
            try:
                process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
        self._processes.clear()
