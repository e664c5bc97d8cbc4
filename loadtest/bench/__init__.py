"""Benchmarks run by `make bench-*`; `python -m loadtest.bench counters` is the counting one.

Every scenario is bounded in time and stops by itself; every server it talks to listens on
127.0.0.1.
"""
