"""Range headers: served ranges, ignored headers (whole object) and 416s."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from edge.byte_range import ByteRange, Unsatisfiable, parse_range


@pytest.mark.parametrize(
    ("header", "expected"),
    [
        ("bytes=0-99", (0, 99)),
        ("bytes=0-0", (0, 0)),
        ("bytes=100-", (100, 999)),
        ("bytes=-100", (900, 999)),
        ("bytes=-5000", (0, 999)),
        ("bytes=500-5000", (500, 999)),
        ("Bytes = 1-2", (1, 2)),
    ],
)
def test_single_ranges_are_served(header: str, expected: tuple[int, int]) -> None:
    result = parse_range(header, 1000)
    assert isinstance(result, ByteRange)
    assert (result.start, result.end) == expected
    assert result.content_range == f"bytes {expected[0]}-{expected[1]}/1000"


@pytest.mark.parametrize(
    "header", [None, "", "bytes=", "bytes=-", "items=0-1", "bytes=5-1", "bytes=0-1,5-6", "x"]
)
def test_headers_not_served_as_a_range_mean_the_whole_object(header: str | None) -> None:
    assert parse_range(header, 1000) is None


@pytest.mark.parametrize("header", ["bytes=1000-", "bytes=1000-2000", "bytes=-0"])
def test_ranges_outside_the_object_are_unsatisfiable(header: str) -> None:
    result = parse_range(header, 1000)
    assert isinstance(result, Unsatisfiable)
    assert result.content_range == "bytes */1000"


def test_any_range_of_an_empty_object_is_unsatisfiable() -> None:
    assert isinstance(parse_range("bytes=0-", 0), Unsatisfiable)
    assert isinstance(parse_range("bytes=-1", 0), Unsatisfiable)


@given(st.integers(0, 10_000), st.integers(0, 20_000), st.integers(0, 20_000) | st.none())
def test_a_served_range_always_lies_inside_the_object(
    size: int, first: int, last: int | None
) -> None:
    header = f"bytes={first}-{'' if last is None else last}"
    result = parse_range(header, size)
    if isinstance(result, ByteRange):
        assert 0 <= result.start <= result.end < size
        assert result.length == result.end - result.start + 1
