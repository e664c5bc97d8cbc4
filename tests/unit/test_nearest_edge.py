"""The nearest healthy edge for a region, from the latency map."""

from __future__ import annotations

import pytest

from edge.nearest_edge import LatencyMap, parse_edge_urls
from reelstream.settings import ConfigError

MAP = LatencyMap.parse(
    ["eu:edge-0=10", "eu:edge-1=40", "us:edge-0=90", "us:edge-1=15", "ap:edge-2=5"]
)


def test_the_lowest_latency_healthy_edge_is_chosen() -> None:
    choice = MAP.nearest("eu", {"edge-0", "edge-1"})
    assert choice is not None
    assert (choice.edge, choice.latency_ms) == ("edge-0", 10.0)
    choice = MAP.nearest("us", {"edge-0", "edge-1"})
    assert choice is not None
    assert choice.edge == "edge-1"


def test_an_unhealthy_edge_is_skipped() -> None:
    choice = MAP.nearest("eu", {"edge-1"})
    assert choice is not None
    assert choice.edge == "edge-1"


def test_no_answer_for_unknown_regions_or_when_no_edge_is_healthy() -> None:
    assert MAP.nearest("mars", {"edge-0"}) is None
    assert MAP.nearest("ap", {"edge-0", "edge-1"}) is None


def test_ties_are_broken_by_name() -> None:
    tied = LatencyMap.parse(["eu:edge-b=10", "eu:edge-a=10"])
    choice = tied.nearest("eu", {"edge-a", "edge-b"})
    assert choice is not None
    assert choice.edge == "edge-a"


@pytest.mark.parametrize("entry", ["eu-edge-0=10", "eu:edge-0", "eu:edge 0=1", ":edge=1"])
def test_malformed_entries_fail_at_start_up(entry: str) -> None:
    with pytest.raises(ConfigError):
        LatencyMap.parse([entry])


def test_edge_urls_are_parsed() -> None:
    assert parse_edge_urls(["edge-0=http://127.0.0.1:8080/"]) == {"edge-0": "http://127.0.0.1:8080"}
    with pytest.raises(ConfigError):
        parse_edge_urls(["edge-0 127.0.0.1"])
