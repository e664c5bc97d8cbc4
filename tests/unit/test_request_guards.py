"""The server-side guards every tier shares: undecodable requests and abort cycles."""

from __future__ import annotations

from protos import common_pb2
from reelstream.abort_cycles import forget_frames
from reelstream.malformed_requests import Undecodable, safe_deserializer
from reelstream.request_limits import reel_id_problem, reel_ids_problem


def test_an_undecodable_request_becomes_a_marker_with_the_parsers_reason() -> None:
    parse = safe_deserializer(common_pb2.EventBatch.FromString)
    parsed = parse(b"\x0a\xff\xff\xff\xff\x0f")
    assert isinstance(parsed, Undecodable)
    assert parsed.reason
    assert parse(common_pb2.EventBatch(reel_ids=[1]).SerializeToString()).reel_ids == [1]


def test_forgetting_frames_clears_every_chained_traceback() -> None:
    try:
        try:
            raise ValueError("inner")
        except ValueError as inner:
            raise RuntimeError("outer") from inner
    except RuntimeError as exc:
        error = exc
    assert error.__traceback__ is not None
    forget_frames(error)
    assert error.__traceback__ is None
    assert error.__cause__ is not None
    assert error.__cause__.__traceback__ is None


def test_ids_outside_the_bigint_range_are_refused() -> None:
    assert reel_id_problem(1) is None
    assert reel_id_problem(2**63 - 1) is None
    assert reel_id_problem(0)
    assert reel_id_problem(2**63)
    assert reel_ids_problem([1, 2**64 - 1]) is not None
    assert reel_ids_problem([]) == "reel_ids is empty"
    assert reel_ids_problem(list(range(1, 1002))) is not None
