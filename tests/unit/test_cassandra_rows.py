"""Cached row classes give the rows the driver's own factory gives."""

from __future__ import annotations

import gc

import pytest
from cassandra.query import named_tuple_factory

from reelstream.cassandra_rows import named_tuple_rows, row_type

COLUMN_LISTS = [
    ["reel_id", "views", "likes"],
    ["[applied]", "epoch", "owner"],
    ["count", "system.writetime(v)"],
    ["a", "a"],
    ["1st", "b"],
]


@pytest.mark.parametrize("columns", COLUMN_LISTS)
def test_rows_have_the_driver_factorys_fields_and_values(columns: list[str]) -> None:
    values = [tuple(range(len(columns))), tuple(range(10, 10 + len(columns)))]
    ours = named_tuple_rows(columns, values)
    drivers = named_tuple_factory(columns, values)
    assert [row._fields for row in ours] == [row._fields for row in drivers]
    assert [tuple(row) for row in ours] == [tuple(row) for row in drivers]


def test_an_lwt_result_reads_applied_by_name() -> None:
    (row,) = named_tuple_rows(["[applied]", "epoch"], [(False, 7)])
    assert row.applied is False
    assert row.epoch == 7


def test_one_class_per_column_list_and_no_cyclic_garbage_per_result() -> None:
    columns = ["reel_id", "views"]
    first = named_tuple_rows(columns, [(1, 2)])
    assert type(named_tuple_rows(list(columns), [(3, 4)])[0]) is type(first[0])
    assert row_type(("reel_id", "likes")) is not type(first[0])
    gc.collect()
    gc.disable()
    try:
        for i in range(200):
            named_tuple_rows(columns, [(i, i)])
        assert gc.collect() == 0
    finally:
        gc.enable()
