"""gRPC contracts of Reelstream (package reelstream.v1) and their generated Python modules.

Regenerate with `make proto`; tests/unit/test_protos_fresh.py fails when they are stale.
"""
