"""The spam filter of the origin tier: features, model, lockstep detection, verdicts.

Runs as its own process (`reelstream-spam`, `python -m spam`) beside the origin.
"""
