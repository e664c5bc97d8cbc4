"""The local launchers start real servers idempotently and keep acknowledged data over a crash."""

from __future__ import annotations

import socket
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis

from reelstream.infra import cassandra_node, cpu_priority, local_process, redis_server

pytestmark = pytest.mark.integration


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@pytest.fixture(scope="module")
def cassandra_node1() -> cassandra_node.CassandraNodeSpec:
    """The single node on 127.0.0.1, started if needed and left running for later tests."""
    return cassandra_node.up(1)[0]


@pytest.fixture
def redis_instance(tmp_path: Path) -> Iterator[redis_server.RedisInstanceSpec]:
    """A throw-away Redis on a free port, with its AOF under the test's tmp folder."""
    spec = redis_server.up("launcher-test", _free_port(), base_dir=tmp_path)
    yield spec
    redis_server.down(spec.name, base_dir=tmp_path)


def _client(spec: redis_server.RedisInstanceSpec) -> redis.Redis:
    return redis.Redis(host=redis_server.HOST, port=spec.port, socket_timeout=5)


def test_redis_up_twice_keeps_the_running_server(
    redis_instance: redis_server.RedisInstanceSpec, capsys: pytest.CaptureFixture[str]
) -> None:
    pid = redis_server.read_pid(redis_instance)
    capsys.readouterr()

    redis_server.up(redis_instance.name, base_dir=redis_instance.base_dir)

    assert "already running" in capsys.readouterr().out
    assert redis_server.read_pid(redis_instance) == pid


def test_acknowledged_incr_survives_kill_9_and_restart(
    redis_instance: redis_server.RedisInstanceSpec,
) -> None:
    with _client(redis_instance) as client:
        assert client.ping()
        client.set("video:1:title", "cats")
        views = [client.incr("video:1:views") for _ in range(5)]
    assert views == [1, 2, 3, 4, 5]
    crashed_pid = redis_server.read_pid(redis_instance)

    redis_server.kill(redis_instance.name, base_dir=redis_instance.base_dir)
    assert redis_server.read_pid(redis_instance) is None
    redis_server.restart(redis_instance.name, base_dir=redis_instance.base_dir)

    assert redis_server.read_pid(redis_instance) not in (None, crashed_pid)
    with _client(redis_instance) as client:
        assert client.get("video:1:views") == b"5"
        assert client.get("video:1:title") == b"cats"


def test_a_journal_redis_runs_ahead_and_keeps_its_priority_over_a_restart(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("REELSTREAM_JOURNAL_NICE", "-3")
    # Raising a priority needs CAP_SYS_NICE; without it the server runs at 0.
    expected = -3 if cpu_priority.can_raise_priority() else 0
    spec = redis_server.up_journal("journal-test", _free_port(), base_dir=tmp_path)
    try:
        pid = redis_server.read_pid(spec)
        assert pid is not None
        assert local_process.niceness(pid) == expected
        redis_server.restart(spec.name, base_dir=tmp_path)
        restarted = redis_server.read_pid(spec)
        assert restarted is not None
        assert restarted != pid
        assert local_process.niceness(restarted) == expected
    finally:
        redis_server.down(spec.name, base_dir=tmp_path)


@pytest.mark.timeout(600)  # the first run may resolve Cassandra's jars from Maven Central
def test_cassandra_up_is_a_no_op_when_the_node_answers(
    cassandra_node1: cassandra_node.CassandraNodeSpec, capsys: pytest.CaptureFixture[str]
) -> None:
    pid = cassandra_node.read_pid(cassandra_node1)
    assert pid is not None
    capsys.readouterr()

    cassandra_node.up(1)

    assert "already running" in capsys.readouterr().out
    assert cassandra_node.read_pid(cassandra_node1) == pid
    assert cassandra_node.cql_release_version(cassandra_node1) == cassandra_node.CASSANDRA_VERSION
