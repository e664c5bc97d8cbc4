"""What the benchmark ran on: hardware, versions and the code's commit, for the report."""

from __future__ import annotations

import os
import platform
import subprocess
from importlib import metadata

import psutil

from loadtest.bench.settings import REPO_ROOT
from reelstream.infra.cassandra_runtime import CASSANDRA_VERSION

PACKAGES = ("grpcio", "protobuf", "cassandra-driver", "redis", "uvloop", "numpy")


def _cpu_model() -> str:
    try:
        with open("/proc/cpuinfo") as cpuinfo:
            for line in cpuinfo:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def _command_output(*command: str) -> str:
    """First line of what `command` printed (stdout, else stderr); empty when it failed."""
    try:
        done = subprocess.run(
            command, capture_output=True, text=True, timeout=10, check=False, cwd=REPO_ROOT
        )
    except (OSError, subprocess.TimeoutExpired):
        return ""
    text = (done.stdout.strip() or done.stderr.strip()).splitlines()
    return text[0] if text else ""


def describe_machine() -> dict[str, str]:
    """Cores, memory, CPU model, OS, and the versions of everything on the measured path."""
    info = {
        "nproc": str(os.cpu_count()),
        "memory_gib": f"{psutil.virtual_memory().total / 2**30:.1f}",
        "cpu_model": _cpu_model(),
        "kernel": platform.release(),
        "python": platform.python_version(),
        "cassandra": CASSANDRA_VERSION,
        "redis_server": _command_output("redis-server", "--version").split(" sha=")[0],
        "java": _command_output("java", "-version"),
        "git_commit": _command_output("git", "rev-parse", "--short", "HEAD"),
        "git_dirty": "yes" if _command_output("git", "status", "--porcelain") else "no",
        "load_average_at_start": " ".join(f"{x:.2f}" for x in os.getloadavg()),
    }
    for package in PACKAGES:
        try:
            info[package] = metadata.version(package)
        except metadata.PackageNotFoundError:
            info[package] = "not installed"
    return info
