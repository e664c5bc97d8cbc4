"""Mutual TLS and authorisation by identity between real services: a counter shard and an
edge run with the certificates of `make certs` (no plaintext switch). Callers are admitted
by their certificate's identity; the wrong identity gets PERMISSION_DENIED naming it and
the method; a caller without a certificate, or with one from another CA, gets no connection;
a service without certificates refuses to start; rate limits answer RESOURCE_EXHAUSTED with
a retry delay."""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import grpc
import pytest
from cassandra.cluster import Cluster
from grpc_health.v1 import health_pb2, health_pb2_grpc

from protos import common_pb2, counter_pb2, counter_pb2_grpc, edge_pb2, edge_pb2_grpc
from reelstream.infra.dev_certs import ensure_certificates
from tests.integration.conftest import (
    ServiceProcess,
    counter_env,
    edge_env,
    free_port,
    start_process,
    stop_process,
)

pytestmark = [pytest.mark.integration, pytest.mark.timeout(180)]

EDGE_RATE_PER_S = 2
EDGE_BURST = 10


def tls_channel(address: str, certs: Path, identity: str | None) -> grpc.Channel:
    """A channel trusting `certs`' CA and presenting `identity`'s certificate (or none)."""
    credentials = grpc.ssl_channel_credentials(
        root_certificates=(certs / "ca.pem").read_bytes(),
        private_key=(certs / f"{identity}.key").read_bytes() if identity else None,
        certificate_chain=(certs / f"{identity}.pem").read_bytes() if identity else None,
    )
    return grpc.secure_channel(address, credentials)


def wait_serving_tls(service: ServiceProcess, certs: Path, timeout_s: float = 120.0) -> None:
    deadline = time.monotonic() + timeout_s
    with tls_channel(service.address, certs, "admin") as channel:
        stub = health_pb2_grpc.HealthStub(channel)
        while True:
            if service.process.poll() is not None:
                raise AssertionError(f"{service.name} exited:\n{service.log_tail()}")
            try:
                response = stub.Check(health_pb2.HealthCheckRequest(), timeout=1)
                if response.status == health_pb2.HealthCheckResponse.SERVING:
                    return
            except grpc.RpcError:
                pass
            if time.monotonic() > deadline:
                raise AssertionError(f"{service.name} not SERVING:\n{service.log_tail()}")
            time.sleep(0.2)


@dataclass
class MtlsStack:
    certs: Path
    counter: str
    edge: str


@pytest.fixture(scope="module")
def certs(tmp_path_factory: pytest.TempPathFactory) -> Path:
    directory = tmp_path_factory.mktemp("certs")
    ensure_certificates(directory)
    return directory


@pytest.fixture(scope="module")
def mtls_stack(
    certs: Path, cassandra: str, redis_port: int, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[MtlsStack]:
    """One counter shard and one edge, both serving and dialling with mutual TLS."""
    keyspace = f"test_{uuid.uuid4().hex[:12]}"
    logs = tmp_path_factory.mktemp("mtls-logs")
    tls = {"REELSTREAM_PLAINTEXT": "0", "REELSTREAM_CERTS_DIR": str(certs)}
    counter = f"127.0.0.1:{free_port()}"
    edge = f"127.0.0.1:{free_port()}"
    started: list[ServiceProcess] = []
    try:
        counter_settings = {**counter_env(keyspace, 0, 1, counter), **tls}
        started.append(start_process("counter", "counter-tls", counter_settings, counter, logs))
        wait_serving_tls(started[-1], certs)
        edge_settings = {
            **edge_env(keyspace, "edge-tls", edge, redis_port, [counter]),
            **tls,
            "REELSTREAM_RATE_LIMIT_RPCS_PER_S": str(EDGE_RATE_PER_S),
            "REELSTREAM_RATE_LIMIT_BURST": str(EDGE_BURST),
        }
        started.append(start_process("edge", "edge-tls", edge_settings, edge, logs))
        wait_serving_tls(started[-1], certs)
        yield MtlsStack(certs, counter, edge)
    finally:
        for service in reversed(started):
            stop_process(service)
        cluster = Cluster([cassandra], protocol_version=5)
        try:
            cluster.connect().execute(f"DROP KEYSPACE IF EXISTS {keyspace}", timeout=60)
        finally:
            cluster.shutdown()


def correction(batch_id: str) -> counter_pb2.CorrectionBatch:
    return counter_pb2.CorrectionBatch(
        batch_id=batch_id, reel_ids=[11], view_deltas=[0], like_deltas=[0], reason="test"
    )


def code_of(call: Callable[[], object]) -> tuple[grpc.StatusCode, str]:
    try:
        call()
    except grpc.RpcError as exc:
        return exc.code(), exc.details() or ""
    return grpc.StatusCode.OK, ""


def test_only_the_spam_service_may_send_corrections(mtls_stack: MtlsStack) -> None:
    outcomes = {}
    for identity in ("edge", "spam"):
        with tls_channel(mtls_stack.counter, mtls_stack.certs, identity) as channel:
            stub = counter_pb2_grpc.CounterServiceStub(channel)
            batch = correction(f"c-{identity}")
            outcomes[identity] = code_of(lambda: stub.ApplyCorrections(batch, timeout=10))  # noqa: B023
    assert outcomes["edge"][0] == grpc.StatusCode.PERMISSION_DENIED
    assert "'edge'" in outcomes["edge"][1]
    assert "CounterService/ApplyCorrections" in outcomes["edge"][1]
    assert outcomes["spam"] == (grpc.StatusCode.OK, "")


def test_an_app_certificate_cannot_apply_counter_batches(mtls_stack: MtlsStack) -> None:
    with tls_channel(mtls_stack.counter, mtls_stack.certs, "app") as channel:
        stub = counter_pb2_grpc.CounterServiceStub(channel)
        batch = counter_pb2.ApplyBatchRequest(
            batch_id=counter_pb2.BatchId(edge_id="forged.1", shard=0, seq=1),
            view_reel_ids=[11],
            view_minutes=[29_000_000],
            view_counts=[1_000_000],
        )
        code, details = code_of(lambda: stub.ApplyBatch(batch, timeout=10))
    assert code == grpc.StatusCode.PERMISSION_DENIED
    assert "'app'" in details
    assert "ApplyBatch" in details


def test_events_sent_by_an_app_reach_the_shard_over_mutual_tls(mtls_stack: MtlsStack) -> None:
    """The edge dials the shard with its own certificate (ApplyBatch is for edges only)."""
    batch = common_pb2.EventBatch(
        reel_ids=[42] * 3,
        user_ids=[1, 2, 3],
        kinds=[common_pb2.EVENT_KIND_VIEW] * 3,
        watch_ms=[5_000] * 3,
    )
    with tls_channel(mtls_stack.edge, mtls_stack.certs, "app") as channel:
        edge_pb2_grpc.EdgeServiceStub(channel).SendEvents(batch, timeout=10)
    with tls_channel(mtls_stack.counter, mtls_stack.certs, "admin") as channel:
        counter = counter_pb2_grpc.CounterServiceStub(channel)
        deadline = time.monotonic() + 30
        views = 0
        while views < 3 and time.monotonic() < deadline:
            counts = counter.GetCounts(common_pb2.GetCountsRequest(reel_ids=[42]), timeout=5)
            views = counts.counts[0].views
            time.sleep(0.1)
    assert views == 3


def test_only_takedowns_may_purge_an_edge(mtls_stack: MtlsStack) -> None:
    request = edge_pb2.PurgeReelRequest(reel_id=77, reason="test")
    outcomes = {}
    for identity in ("app", "moderation"):
        with tls_channel(mtls_stack.edge, mtls_stack.certs, identity) as channel:
            stub = edge_pb2_grpc.EdgeServiceStub(channel)
            outcomes[identity] = code_of(lambda: stub.PurgeReel(request, timeout=10))  # noqa: B023
    assert outcomes["app"][0] == grpc.StatusCode.PERMISSION_DENIED
    assert "'app'" in outcomes["app"][1]
    assert "EdgeService/PurgeReel" in outcomes["app"][1]
    assert outcomes["moderation"][0] == grpc.StatusCode.OK


def test_no_connection_without_a_client_certificate(mtls_stack: MtlsStack) -> None:
    with tls_channel(mtls_stack.counter, mtls_stack.certs, None) as channel:
        stub = health_pb2_grpc.HealthStub(channel)
        code, _ = code_of(lambda: stub.Check(health_pb2.HealthCheckRequest(), timeout=5))
    assert code == grpc.StatusCode.UNAVAILABLE
    with grpc.insecure_channel(mtls_stack.counter) as channel:
        stub = health_pb2_grpc.HealthStub(channel)
        code, _ = code_of(lambda: stub.Check(health_pb2.HealthCheckRequest(), timeout=5))
    assert code == grpc.StatusCode.UNAVAILABLE


def test_no_connection_with_a_certificate_of_another_ca(
    mtls_stack: MtlsStack, tmp_path: Path
) -> None:
    rogue = tmp_path / "rogue"
    ensure_certificates(rogue, identities=("spam",))
    credentials = grpc.ssl_channel_credentials(
        root_certificates=(mtls_stack.certs / "ca.pem").read_bytes(),
        private_key=(rogue / "spam.key").read_bytes(),
        certificate_chain=(rogue / "spam.pem").read_bytes(),
    )
    with grpc.secure_channel(mtls_stack.counter, credentials) as channel:
        stub = counter_pb2_grpc.CounterServiceStub(channel)
        code, _ = code_of(lambda: stub.ApplyCorrections(correction("rogue"), timeout=5))
    assert code == grpc.StatusCode.UNAVAILABLE


def test_a_caller_over_its_rate_limit_is_told_when_to_retry(mtls_stack: MtlsStack) -> None:
    with tls_channel(mtls_stack.edge, mtls_stack.certs, "admin") as channel:
        stub = edge_pb2_grpc.EdgeServiceStub(channel)
        request = common_pb2.GetCountsRequest(reel_ids=[42])
        refused: grpc.RpcError | None = None
        for _ in range(EDGE_BURST + 5):
            try:
                stub.GetCounts(request, timeout=5)
            except grpc.RpcError as exc:
                refused = exc
                break
    assert refused is not None
    assert refused.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
    assert "'admin'" in (refused.details() or "")
    trailers = dict(refused.trailing_metadata() or ())  # type: ignore[attr-defined]
    assert 0 < int(trailers["retry-after-ms"]) <= 1000 / EDGE_RATE_PER_S


def test_a_service_without_certificates_refuses_to_start(cassandra: str, tmp_path: Path) -> None:
    address = f"127.0.0.1:{free_port()}"
    env = {
        **counter_env("unused_keyspace", 0, 1, address),
        "REELSTREAM_PLAINTEXT": "0",
        "REELSTREAM_CERTS_DIR": str(tmp_path / "no-certs"),
    }
    service = start_process("counter", "counter-nocerts", env, address, tmp_path)
    try:
        assert service.process.wait(timeout=60) == 1
    finally:
        stop_process(service)
    log = service.log_tail()
    assert "make certs" in log
    assert "REELSTREAM_PLAINTEXT=1" in log
