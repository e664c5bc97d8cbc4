"""HTTP serving benchmark tools: nginx (Debian) as the reference static server and wrk as
the load tool, both run as child processes on loopback for a bounded time."""

from __future__ import annotations

import re
import shutil
import subprocess
import time
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path

NGINX_CONF = """\
worker_processes {workers};
daemon off;
pid {run_dir}/nginx.pid;
error_log {run_dir}/error.log warn;
events {{ worker_connections 4096; }}
http {{
    access_log off;
    sendfile on;
    tcp_nopush on;
    keepalive_requests 1000000;
    open_file_cache max=1000 inactive=60s;
    client_body_temp_path {run_dir}/body;
    proxy_temp_path {run_dir}/proxy;
    fastcgi_temp_path {run_dir}/fastcgi;
    uwsgi_temp_path {run_dir}/uwsgi;
    scgi_temp_path {run_dir}/scgi;
    types {{ video/iso.segment m4s; }}
    server {{
        listen 127.0.0.1:{port} reuseport;
        root {root};
        add_header Cache-Control "public, max-age=31536000, immutable";
    }}
}}
"""


@dataclass(frozen=True)
class WrkResult:
    requests_per_s: float
    megabytes_per_s: float
    requests: int
    errors: int
    latency_p50_ms: float
    latency_p99_ms: float


def find_tool(name: str) -> str:
    path = shutil.which(name) or shutil.which(name, path="/usr/sbin:/sbin")
    if path is None:
        raise RuntimeError(f"{name} is missing: run `scripts/install-system-deps.sh bench`")
    return path


def wait_http(url: str, timeout_s: float) -> None:
    deadline = time.monotonic() + timeout_s
    while True:
        try:
            with urllib.request.urlopen(url, timeout=2) as response:
                if response.status == 200:
                    return
        except (urllib.error.URLError, OSError):
            pass
        if time.monotonic() > deadline:
            raise RuntimeError(f"{url} did not answer 200 within {timeout_s:.0f} s")
        time.sleep(0.1)


class NginxServer:
    """nginx serving `root` on 127.0.0.1:`port` with `workers` worker processes."""

    def __init__(self, root: Path, run_dir: Path, port: int, workers: int) -> None:
        run_dir.mkdir(parents=True, exist_ok=True)
        self._conf = run_dir / "nginx.conf"
        self._conf.write_text(
            NGINX_CONF.format(workers=workers, run_dir=run_dir, port=port, root=root)
        )
        self._process: subprocess.Popen[bytes] | None = None

    def __enter__(self) -> NginxServer:
        self._process = subprocess.Popen(
            [find_tool("nginx"), "-c", str(self._conf)],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        return self

    def __exit__(self, *exc: object) -> None:
        if self._process is not None and self._process.poll() is None:
            self._process.terminate()  # nginx: fast shutdown of master and workers
            try:
                self._process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self._process.kill()
                self._process.wait()


_UNITS = {"us": 0.001, "ms": 1.0, "s": 1000.0, "m": 60_000.0}
_SIZE = {"B": 1 / 1e6, "KB": 1024 / 1e6, "MB": 1024**2 / 1e6, "GB": 1024**3 / 1e6}


def _latency_ms(text: str, label: str) -> float:
    match = re.search(rf"^\s*{label}%\s+([0-9.]+)(us|ms|s|m)\s*$", text, re.M)
    return float(match[1]) * _UNITS[match[2]] if match else float("nan")


def run_wrk(url: str, seconds: float, connections: int, threads: int = 1) -> WrkResult:
    """Runs wrk against `url` for `seconds` and parses its summary."""
    done = subprocess.run(
        [
            find_tool("wrk"),
            f"-t{threads}",
            f"-c{connections}",
            f"-d{max(1, round(seconds))}s",
            "--latency",
            url,
        ],
        capture_output=True,
        text=True,
        timeout=seconds + 30,
        check=True,
    )
    out = done.stdout
    rps = re.search(r"Requests/sec:\s+([0-9.]+)", out)
    transfer = re.search(r"Transfer/sec:\s+([0-9.]+)(B|KB|MB|GB)", out)
    total = re.search(r"([0-9]+) requests in", out)
    non_2xx = re.search(r"Non-2xx or 3xx responses:\s+([0-9]+)", out)
    socket_errors = re.search(
        r"Socket errors: connect ([0-9]+), read ([0-9]+), write ([0-9]+), timeout ([0-9]+)", out
    )
    if rps is None or transfer is None or total is None:
        raise RuntimeError(f"cannot parse wrk output:\n{out}\n{done.stderr}")
    errors = int(non_2xx[1]) if non_2xx else 0
    if socket_errors:
        errors += sum(int(socket_errors[i]) for i in range(1, 5))
    return WrkResult(
        requests_per_s=float(rps[1]),
        megabytes_per_s=float(transfer[1]) * _SIZE[transfer[2]],
        requests=int(total[1]),
        errors=errors,
        latency_p50_ms=_latency_ms(out, "50"),
        latency_p99_ms=_latency_ms(out, "99"),
    )
