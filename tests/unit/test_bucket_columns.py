import numpy as np

from counter.bucket_columns import BucketColumns

MINUTE = ("minute", 6_000_000)
OLD_MINUTE = ("minute", 60_000)
HOUR = ("hour", 3_600_000)


def slots(*values: int) -> np.ndarray:
    return np.array(values, dtype=np.int64)


def test_repeated_slots_in_one_add_are_all_counted() -> None:
    columns = BucketColumns(capacity=4)
    columns.add_views((MINUTE, HOUR), slots(1, 1, 2), np.array([2, 3, 4], dtype=np.int64))
    assert columns.get(1, MINUTE) == (5, 0)
    assert columns.get(2, HOUR) == (4, 0)
    assert columns.get(0, MINUTE) is None  # never added to: not held
    assert columns.held(1) == [HOUR, MINUTE]


def test_a_snapshot_copy_takes_each_change_once() -> None:
    columns = BucketColumns(capacity=4)
    columns.add(3, (MINUTE, HOUR), views=0, likes=1)
    assert sorted(columns.take_dirty(3)) == [("hour", 3_600_000, 0, 1), ("minute", 6_000_000, 0, 1)]
    assert columns.take_dirty(3) == []
    assert columns.get(3, MINUTE) == (0, 1)  # still held after the copy


def test_a_bucket_read_from_cassandra_is_held_but_not_dirty() -> None:
    columns = BucketColumns(capacity=4)
    columns.put(0, OLD_MINUTE, views=7, likes=2)
    assert columns.is_present(0, OLD_MINUTE)
    assert columns.take_dirty(0) == []
    columns.add(0, (OLD_MINUTE,), views=1, likes=0)  # a late event adds to the stored value
    assert columns.take_dirty(0) == [("minute", 60_000, 8, 2)]


def test_old_columns_leave_whole_and_only_when_clean() -> None:
    columns = BucketColumns(capacity=4)
    columns.add_views((OLD_MINUTE, MINUTE), slots(0, 1), np.array([1, 1], dtype=np.int64))
    horizons = {"minute": 6_000_000}
    assert columns.retire(horizons) == 0  # dirty in both slots
    columns.take_dirty(0)
    assert columns.retire(horizons) == 0  # slot 1 still waits for a snapshot
    columns.take_dirty(1)
    assert columns.retire(horizons) == 2
    assert list(columns.columns) == [MINUTE]  # not older than the horizon: stays
    assert not columns.is_present(0, OLD_MINUTE)


def test_growing_keeps_values_and_cleared_slots_hold_nothing() -> None:
    columns = BucketColumns(capacity=2)
    columns.add(1, (MINUTE,), views=5, likes=1)
    columns.grow(8)
    columns.add_views((MINUTE,), slots(7), np.array([3], dtype=np.int64))
    assert columns.get(1, MINUTE) == (5, 1)
    assert columns.get(7, MINUTE) == (3, 0)
    columns.clear(slots(1))
    assert columns.get(1, MINUTE) is None
    assert columns.take_dirty(1) == []
    assert columns.rows(7, "minute", 0, 2**62) == [(6_000_000, 3, 0)]


def test_taking_many_slots_at_once_gives_each_slot_its_own_dirty_buckets() -> None:
    columns = BucketColumns(capacity=8)
    columns.add_views((MINUTE, HOUR), slots(1, 2, 5), np.array([1, 2, 3], dtype=np.int64))
    columns.add(5, (OLD_MINUTE,), views=0, likes=4)
    columns.put(6, OLD_MINUTE, views=9, likes=9)  # held, not dirty
    taken = columns.take_dirty_rows(slots(5, 6, 1, 7))
    # Rows grouped by the index of their slot in the slots asked for.
    assert taken.owners.tolist() == sorted(taken.owners.tolist())
    by_slot: list[list[tuple[str, int, int, int]]] = [[], [], [], []]
    for owner, row in zip(taken.owners.tolist(), taken.tuples(), strict=True):
        by_slot[owner].append(row)
    assert [sorted(buckets) for buckets in by_slot] == [
        [("hour", 3_600_000, 3, 0), ("minute", 60_000, 0, 4), ("minute", 6_000_000, 3, 0)],
        [],
        [("hour", 3_600_000, 1, 0), ("minute", 6_000_000, 1, 0)],
        [],
    ]
    assert len(columns.take_dirty_rows(slots(5, 1)).owners) == 0
    assert sorted(columns.take_dirty(2)) == [("hour", 3_600_000, 2, 0), ("minute", 6_000_000, 2, 0)]
