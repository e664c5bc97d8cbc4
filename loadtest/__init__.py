"""Load generation and benchmarks for Reelstream (traffic to loopback only, bounded in time)."""
