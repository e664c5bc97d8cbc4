"""Benchmarks run by `make bench-*`; `python -m loadtest.bench counters` is the counting one.

Every scenario is bounded in time and stops by itself; every server it talks to listens on
127.0.0.1.

Benchmarks run their services and clients in plaintext, switched on explicitly here (one
place for every `python -m loadtest.bench...`; services they start inherit it): their
figures stay comparable with the earlier runs in docs/benchmarks.md. docs/security.md
says how the stack runs with mutual TLS.
"""

import os

os.environ["REELSTREAM_PLAINTEXT"] = "1"
