"""Toxiproxy (Shopify) between tiers, for fault tests: its server as a local process and a
small client of its HTTP API.

A proxy listens on a loopback port and forwards to an upstream (a counter shard, the origin,
Cassandra); toxics added to it inject latency, stalled connections (`timeout`) or TCP resets
(`reset_peer`) until removed. The binaries come from the Go module proxy
(`scripts/install-toxiproxy.sh`, run by `make toxiproxy`) into the git-ignored `.tools/bin`.
"""

from __future__ import annotations

import json
import subprocess
import time
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from reelstream.infra.local_process import REPO_ROOT

TOXIPROXY_VERSION = "v2.5.0"
TOOLS_BIN = REPO_ROOT / ".tools" / "bin"
SERVER_BINARY = TOOLS_BIN / "toxiproxy-server"
INSTALL_HINT = "run `make toxiproxy` (go install from the Go module proxy into .tools/bin)"


class ToxiproxyError(RuntimeError):
    """The server is missing, did not start, or refused an API call (the message says why)."""


@dataclass(frozen=True)
class Toxic:
    """One fault on a proxy: `kind` is a Toxiproxy toxic type (latency, timeout, reset_peer,
    bandwidth, slow_close, limit_data, ...) with that type's attributes."""

    name: str
    kind: str
    attributes: dict[str, int]
    stream: str = "downstream"
    """downstream: bytes from the upstream to the client; upstream: the other way."""
    toxicity: float = 1.0
    """Share of connections the toxic applies to."""


class ToxiproxyClient:
    """Blocking client of the HTTP API (tests and scripts; never on an event loop)."""

    def __init__(self, api_address: str) -> None:
        self._base = f"http://{api_address}"

    def _call(self, method: str, path: str, body: dict[str, Any] | None = None) -> Any:
        data = json.dumps(body).encode() if body is not None else None
        request = urllib.request.Request(
            self._base + path,
            data=data,
            method=method,
            headers={"Content-Type": "application/json"},
        )
        try:
            with urllib.request.urlopen(request, timeout=5) as response:
                payload = response.read()
        except urllib.error.HTTPError as exc:
            raise ToxiproxyError(
                f"{method} {path}: HTTP {exc.code} {exc.read().decode(errors='replace')}"
            ) from exc
        return json.loads(payload) if payload.strip() else None

    def version(self) -> str:
        with urllib.request.urlopen(self._base + "/version", timeout=2) as response:
            return str(response.read().decode().strip())

    def create_proxy(self, name: str, listen: str, upstream: str) -> None:
        """A proxy from `listen` (host:port) to `upstream` (host:port), enabled."""
        self._call("POST", "/proxies", {"name": name, "listen": listen, "upstream": upstream})

    def add_toxic(self, proxy: str, toxic: Toxic) -> None:
        self._call(
            "POST",
            f"/proxies/{proxy}/toxics",
            {
                "name": toxic.name,
                "type": toxic.kind,
                "stream": toxic.stream,
                "toxicity": toxic.toxicity,
                "attributes": toxic.attributes,
            },
        )

    def remove_toxic(self, proxy: str, name: str) -> None:
        self._call("DELETE", f"/proxies/{proxy}/toxics/{name}")

    def reset(self) -> None:
        """Removes every toxic and re-enables every proxy."""
        self._call("POST", "/reset")


class ToxiproxyServer:
    """One `toxiproxy-server` process on a loopback port, with its log in `log_dir`."""

    def __init__(self, api_port: int, log_dir: Path) -> None:
        self.api_address = f"127.0.0.1:{api_port}"
        self._log_path = log_dir / "toxiproxy.log"
        self._process: subprocess.Popen[bytes] | None = None

    def start(self, timeout_s: float = 20.0) -> ToxiproxyClient:
        """Starts the server and returns a client once its API answers.

        Raises:
            ToxiproxyError: the binary is missing or the API never answered.
        """
        if not SERVER_BINARY.is_file():
            raise ToxiproxyError(f"{SERVER_BINARY} is missing: {INSTALL_HINT}")
        host, port = self.api_address.split(":")
        with self._log_path.open("ab") as log:
            self._process = subprocess.Popen(
                [str(SERVER_BINARY), "-host", host, "-port", port],
                stdout=log,
                stderr=subprocess.STDOUT,
            )
        client = ToxiproxyClient(self.api_address)
        deadline = time.monotonic() + timeout_s
        while True:
            if self._process.poll() is not None:
                raise ToxiproxyError(f"toxiproxy-server exited; see {self._log_path}")
            try:
                client.version()
                return client
            except OSError:
                if time.monotonic() > deadline:
                    raise ToxiproxyError(
                        f"toxiproxy-server API silent after {timeout_s:.0f} s"
                    ) from None
                time.sleep(0.1)

    def stop(self) -> None:
        if self._process is not None and self._process.poll() is None:
            self._process.terminate()
            try:
                self._process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self._process.kill()
                self._process.wait()
