"""Rows as named tuples, one class per column list.

The driver's default row factory (`cassandra.query.named_tuple_factory`) builds a new
namedtuple class for every result set. A class is ~30 objects in reference cycles, so each
statement that returns rows (every lightweight transaction does: its `[applied]` column)
left garbage that only the cyclic collector frees, and building the class cost about as much
CPU as the rest of the call (measured in session 15: docs/benchmarks.md). Rows keep the
driver's field names: the same cleaning (`[applied]` -> `applied`), the same fallback for
names a namedtuple refuses.
"""

from __future__ import annotations

import functools
from collections import namedtuple
from collections.abc import Sequence
from typing import Any

from cassandra.query import _clean_column_name, _sanitize_identifiers

ROW_TYPES_CACHED = 1024
"""Distinct column lists kept; a service runs a few dozen statements."""


@functools.lru_cache(maxsize=ROW_TYPES_CACHED)
def row_type(column_names: tuple[str, ...]) -> type:
    """The namedtuple class for rows with these columns (built once per column list)."""
    cleaned = [_clean_column_name(name) for name in column_names]
    try:
        return namedtuple("Row", cleaned)
    except ValueError:
        return namedtuple("Row", _sanitize_identifiers(cleaned))


def named_tuple_rows(column_names: Sequence[str], rows: Sequence[Sequence[Any]]) -> list[Any]:
    """A row factory for an ExecutionProfile: the driver's `named_tuple_factory`, cached."""
    make = row_type(tuple(column_names))
    return [make(*row) for row in rows]
