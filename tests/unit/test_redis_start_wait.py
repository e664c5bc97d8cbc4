"""Waiting for a Redis server to start: a server caught mid-exec (its command line empty for
an instant, so its pid does not look like this instance's) is not taken for dead; one
missing on two polls in a row is."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from reelstream.infra import redis_server


def polls(answers: list[bool]) -> Iterator[bool]:
    yield from answers
    raise AssertionError("polled more often than the test expected")


def wait_with(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, ready: list[bool], alive: list[bool]
) -> None:
    readiness, liveness = polls(ready), polls(alive)
    monkeypatch.setattr(redis_server, "is_ready", lambda spec: next(readiness))
    monkeypatch.setattr(redis_server, "read_pid", lambda spec: 4242 if next(liveness) else None)
    monkeypatch.setattr(redis_server.time, "sleep", lambda seconds: None)
    spec = redis_server.instance_spec("wait-test", 6499, base_dir=tmp_path)
    redis_server.wait_until_ready(spec, timeout_s=30)


def test_a_server_missed_on_one_poll_is_waited_for(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    wait_with(monkeypatch, tmp_path, ready=[False, False, False, True], alive=[True, False, True])


def test_a_server_missed_on_two_polls_in_a_row_has_exited(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    with pytest.raises(redis_server.RedisLaunchError, match="exited during start-up"):
        wait_with(monkeypatch, tmp_path, ready=[False, False, False], alive=[True, False, False])
