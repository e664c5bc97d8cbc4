"""The ladder planner: rungs at or below the source's short side, orientation kept, even
sizes, aspect ratio kept, frame rate capped."""

from __future__ import annotations

from fractions import Fraction

import pytest
from hypothesis import given
from hypothesis import strategies as st

from origin.ladder import FULL_LADDER, plan_ladder


def sizes(width: int, height: int) -> dict[str, tuple[int, int]]:
    return {r.name: (r.width, r.height) for r in plan_ladder(width, height, Fraction(30)).rungs}


def test_a_vertical_1080p_source_gets_the_full_ladder_in_portrait() -> None:
    assert sizes(1080, 1920) == {
        "1080p": (1080, 1920),
        "720p": (720, 1280),
        "480p": (480, 854),
        "360p": (360, 640),
        "240p": (240, 426),
    }


def test_a_landscape_source_gets_the_same_rungs_turned_sideways() -> None:
    assert sizes(1920, 1080) == {name: (h, w) for name, (w, h) in sizes(1080, 1920).items()}


def test_rungs_above_the_source_short_side_are_left_out() -> None:
    assert list(sizes(1000, 1000)) == ["720p", "480p", "360p", "240p"]
    assert sizes(362, 642) == {"360p": (360, 638), "240p": (240, 426)}


def test_a_source_below_the_lowest_rung_gets_one_rung_at_its_own_size() -> None:
    plan = plan_ladder(179, 320, Fraction(25))
    assert [(r.name, r.width, r.height) for r in plan.rungs] == [("178p", 178, 318)]
    assert plan.rungs[0].video_kbps < FULL_LADDER[-1].video_kbps


@pytest.mark.parametrize(
    ("source", "expected"),
    [
        (Fraction(30), Fraction(30)),
        (Fraction(30000, 1001), Fraction(30000, 1001)),
        (Fraction(120), Fraction(60)),
        (None, Fraction(30)),
    ],
)
def test_the_output_frame_rate_is_the_source_capped_at_60(
    source: Fraction | None, expected: Fraction
) -> None:
    assert plan_ladder(640, 360, source).frame_rate == expected


def test_the_gop_is_two_seconds_of_frames() -> None:
    assert plan_ladder(640, 360, Fraction(30)).gop_frames == 60
    assert plan_ladder(640, 360, Fraction(24)).gop_frames == 48


@given(st.integers(min_value=144, max_value=4096), st.integers(min_value=144, max_value=4096))
def test_every_plan_respects_size_orientation_and_rate_caps(width: int, height: int) -> None:
    plan = plan_ladder(width, height, Fraction(30))
    assert plan.rungs
    short_src = min(width, height)
    for rung in plan.rungs:
        assert rung.width % 2 == 0
        assert rung.height % 2 == 0
        assert min(rung.width, rung.height) <= short_src
        assert (rung.height > rung.width) == (height > width) or rung.width == rung.height
        assert rung.video_kbps <= rung.maxrate_kbps < rung.bufsize_kbps
        # The long side keeps the aspect ratio, within rounding to an even pixel count.
        short, long = min(rung.width, rung.height), max(rung.width, rung.height)
        assert abs(long - short * max(width, height) / short_src) <= 1
    names = [r.name for r in plan.rungs]
    assert len(set(names)) == len(names)
    heights = [min(r.width, r.height) for r in plan.rungs]
    assert heights == sorted(heights, reverse=True)
