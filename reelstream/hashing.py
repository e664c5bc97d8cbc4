"""The 64-bit mixing function shared by the ring and the unique-viewer sketches.

splitmix64's finaliser spreads structured ids (sequential reel and user ids) uniformly over
64 bits; numpy evaluates it for a whole column at once.
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

MASK64 = (1 << 64) - 1


def mix64(value: int) -> int:
    """splitmix64 finaliser of one unsigned 64-bit value."""
    z = (value + 0x9E3779B97F4A7C15) & MASK64
    z = ((z ^ (z >> 30)) * 0xBF58476D1CE4E5B9) & MASK64
    z = ((z ^ (z >> 27)) * 0x94D049BB133111EB) & MASK64
    return z ^ (z >> 31)


def mix64_array(values: npt.NDArray[np.uint64]) -> npt.NDArray[np.uint64]:
    """`mix64` of every element (uint64 arithmetic wraps like the masked version)."""
    with np.errstate(over="ignore"):
        z = values.astype(np.uint64, copy=False) + np.uint64(0x9E3779B97F4A7C15)
        z = (z ^ (z >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
        z = (z ^ (z >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
        result: npt.NDArray[np.uint64] = z ^ (z >> np.uint64(31))
        return result
