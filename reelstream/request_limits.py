"""Limits on reads that name many reels, shared by every tier's gRPC boundary."""

from __future__ import annotations

from collections.abc import Sized

MAX_REELS_PER_CALL = 1000


def reel_ids_problem(reel_ids: Sized) -> str | None:
    """Why a list of reel ids cannot be served in one call, or None if it can."""
    if not len(reel_ids):
        return "reel_ids is empty"
    if len(reel_ids) > MAX_REELS_PER_CALL:
        return f"at most {MAX_REELS_PER_CALL} reel_ids per call, got {len(reel_ids)}"
    return None
