"""The policy table: who may call which RPC (reelstream/caller_policy.py)."""

from __future__ import annotations

import pytest

from protos import counter_pb2, edge_pb2, moderation_pb2, origin_pb2, spam_pb2
from reelstream.caller_policy import POLICY, refusal
from reelstream.infra.dev_certs import IDENTITIES

ALL_RPCS = sorted(
    f"/{service.full_name}/{method.name}"
    for module in (counter_pb2, edge_pb2, moderation_pb2, origin_pb2, spam_pb2)
    for service in module.DESCRIPTOR.services_by_name.values()
    for method in service.methods
)


def callers_of(method: str) -> set[str]:
    return {identity for identity in IDENTITIES if refusal(identity, method) is None}


def test_every_rpc_of_the_protos_has_a_policy_entry() -> None:
    assert sorted(POLICY) == ALL_RPCS


def test_every_identity_in_the_table_has_a_certificate() -> None:
    named = set().union(*POLICY.values())
    assert named <= set(IDENTITIES)


def test_only_edges_apply_counter_batches() -> None:
    assert callers_of("/reelstream.v1.CounterService/ApplyBatch") == {"edge"}


def test_only_the_spam_service_sends_corrections() -> None:
    assert callers_of("/reelstream.v1.CounterService/ApplyCorrections") == {"spam"}


@pytest.mark.parametrize("method", ["DecideReview", "ClaimReview", "AddToBank", "RemoveFromBank"])
def test_only_moderators_work_the_review_queue_and_bank(method: str) -> None:
    assert callers_of(f"/reelstream.v1.ModerationService/{method}") == {"moderator"}


def test_only_the_origin_and_moderations_takedowns_purge_edges() -> None:
    assert callers_of("/reelstream.v1.EdgeService/PurgeReel") == {"origin", "moderation"}


def test_apps_may_send_events_but_not_purge_or_apply_batches() -> None:
    assert refusal("app", "/reelstream.v1.EdgeService/SendEvents") is None
    assert refusal("app", "/reelstream.v1.EdgeService/PurgeReel") is not None
    assert refusal("app", "/reelstream.v1.CounterService/ApplyBatch") is not None


def test_a_refusal_names_the_identity_and_the_method() -> None:
    reason = refusal("app", "/reelstream.v1.CounterService/ApplyCorrections")
    assert reason is not None
    assert "'app'" in reason
    assert "/reelstream.v1.CounterService/ApplyCorrections" in reason
    assert "spam" in reason


def test_health_and_reflection_stay_open_even_without_an_identity() -> None:
    assert refusal(None, "/grpc.health.v1.Health/Check") is None
    assert refusal(None, "/grpc.health.v1.Health/Watch") is None
    assert refusal(None, "/grpc.reflection.v1alpha.ServerReflection/ServerReflectionInfo") is None


def test_a_caller_without_a_certificate_gets_nothing_else() -> None:
    assert all(refusal(None, method) is not None for method in ALL_RPCS)


def test_a_method_missing_from_the_table_is_refused_to_everyone() -> None:
    method = "/reelstream.v1.CounterService/DropEverything"
    assert all(refusal(identity, method) is not None for identity in IDENTITIES)
