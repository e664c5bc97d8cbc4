"""Bad-input suite, gRPC side: property-based fuzzing of every RPC of every service against
real running processes. Random and boundary messages (huge repeated fields, mismatched
column lengths, max uint64 ids, negative and overflowing values, unknown enum numbers) and
garbage bytes sent through a raw channel must each get a clear status (never UNKNOWN or
INTERNAL), every process must stay up and SERVING, and resident memory must stay bounded.

A bounded selection runs with the suite (REELSTREAM_FUZZ_EXAMPLES, default 12 per RPC);
`make fuzz` runs many more."""

from __future__ import annotations

import time
from collections.abc import Iterator

import grpc
import pytest
from google.protobuf.descriptor import MethodDescriptor
from google.protobuf.message_factory import GetMessageClass
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st

from protos import common_pb2, counter_pb2
from tests.integration.fuzz_messages import event_batches, garbage, messages
from tests.integration.fuzz_stack import (
    CLEAR_REFUSALS,
    SERVICES,
    FuzzBudget,
    FuzzStack,
    fuzz_stack_fixture,
)

pytestmark = [pytest.mark.integration, pytest.mark.timeout(600)]

BUDGET = FuzzBudget.from_env()
# Resident memory a process may gain over a whole fuzz module (16 MB messages, allocator
# arenas, caches filling with fuzzed keys); a leak per call would exceed it quickly.
MAX_RSS_GROWTH_BYTES = 300 * 1024 * 1024

METHODS = [
    pytest.param(service, method, id=f"{service}.{method.name}")
    for service, descriptor in SERVICES.items()
    for method in descriptor.methods
]
# Calls that cost about a second each (a sequence gap waits for its predecessor; an upload
# is probed with ffprobe): fewer examples, so the bounded run stays short.
SLOW_METHODS = {"ApplyBatch", "Upload"}


@pytest.fixture(scope="module")
def stack(
    cassandra: str, redis_port: int, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[FuzzStack]:
    yield from fuzz_stack_fixture(tmp_path_factory.mktemp("fuzz-grpc"), cassandra, redis_port)


@pytest.fixture(scope="module")
def baseline_rss(stack: FuzzStack) -> dict[str, int]:
    return stack.rss_bytes()


def request_bytes(method: MethodDescriptor) -> st.SearchStrategy[bytes]:
    request_class = GetMessageClass(method.input_type)
    structured = messages(request_class)
    if request_class is common_pb2.EventBatch:
        structured = st.one_of(event_batches(), structured)
    return st.one_of(structured.map(lambda m: m.SerializeToString()), garbage())


def requests_for(method: MethodDescriptor) -> st.SearchStrategy[list[bytes]]:
    one = request_bytes(method)
    if method.client_streaming:
        return st.lists(one, min_size=0, max_size=3)
    return one.map(lambda r: [r])


@pytest.mark.parametrize(("service", "method"), METHODS)
def test_every_rpc_answers_hostile_input_with_a_clear_status(
    stack: FuzzStack, baseline_rss: dict[str, int], service: str, method: MethodDescriptor
) -> None:
    examples = BUDGET.examples
    if method.name in SLOW_METHODS:
        examples = max(3, examples // 4)
    seen: dict[grpc.StatusCode, int] = {}

    @settings(
        max_examples=examples,
        deadline=None,
        derandomize=examples <= 50,
        database=None,
        # No shrinking: a failing case is reported as drawn. Shrinking megabyte messages
        # against live processes took the test process to 22 GB once a counter had died.
        phases=[Phase.explicit, Phase.reuse, Phase.generate],
        suppress_health_check=[
            HealthCheck.too_slow,
            HealthCheck.data_too_large,
            HealthCheck.large_base_example,
            HealthCheck.function_scoped_fixture,
        ],
    )
    @given(requests=requests_for(method))
    def case(requests: list[bytes]) -> None:
        code = stack.call(service, method, requests)
        seen[code] = seen.get(code, 0) + 1
        assert code in CLEAR_REFUSALS, (
            f"{service}.{method.name} answered {code} to {[r[:80] for r in requests]}"
        )

    case()
    rss = {name: f"{value >> 20} MiB" for name, value in stack.rss_bytes().items()}
    print(f"{service}.{method.name}: { ({c.name: n for c, n in seen.items()}) } rss {rss}")
    stack.assert_healthy()


def test_a_message_over_the_size_limit_is_refused_with_resource_exhausted(
    stack: FuzzStack,
) -> None:
    method = SERVICES["edge"].methods_by_name["SendEvents"]
    oversized = common_pb2.EventBatch(countries=b"x" * (17 * 1024 * 1024)).SerializeToString()
    assert stack.call("edge", method, [oversized]) == grpc.StatusCode.RESOURCE_EXHAUSTED
    stack.assert_healthy()


def test_refused_large_requests_do_not_pile_up_in_memory(stack: FuzzStack) -> None:
    """Regression: each refused call kept its request alive in a reference cycle until a
    rare garbage collection (reelstream/abort_cycles.py); 150 refused 3.6 MB corrections
    grew a shard by about 1 GB."""
    method = SERVICES["counter"].methods_by_name["ApplyCorrections"]
    refused = counter_pb2.CorrectionBatch(
        batch_id="b", reel_ids=[2**64 - 1] * 200_000, view_deltas=[-(2**63)] * 200_000
    ).SerializeToString()
    before = stack.rss_bytes()["counter"]
    for _ in range(150):
        assert stack.call("counter", method, [refused]) == grpc.StatusCode.INVALID_ARGUMENT
    growth = stack.rss_bytes()["counter"] - before
    assert growth < 150 * 1024 * 1024, f"counter grew by {growth >> 20} MiB"


def test_ids_and_deltas_a_bigint_cannot_hold_are_refused_and_the_shard_keeps_serving(
    stack: FuzzStack,
) -> None:
    """Regression: a batch naming reel 2^63 was applied in memory, then failed the shard's
    next snapshot write, which stopped the counter process (found by `make fuzz`)."""
    apply = SERVICES["counter"].methods_by_name["ApplyBatch"]
    correct = SERVICES["counter"].methods_by_name["ApplyCorrections"]

    def batch(seq: int, **columns: list[int]) -> bytes:
        request = counter_pb2.ApplyBatchRequest(
            batch_id=counter_pb2.BatchId(edge_id="bigint-edge", shard=0, seq=seq), **columns
        )
        return request.SerializeToString()

    refused_batches = [
        batch(1, view_reel_ids=[2**63], view_minutes=[1], view_counts=[1]),
        batch(1, like_reel_ids=[7], like_user_ids=[2**64 - 1], like_ts_ms=[1], like_values=[1]),
        batch(1, viewer_reel_ids=[0], viewer_user_ids=[5]),
        batch(
            1,
            correction_reel_ids=[7],
            correction_view_deltas=[-(2**63)],
            correction_like_deltas=[0],
        ),
        batch(
            1, correction_reel_ids=[7, 8], correction_view_deltas=[-1], correction_like_deltas=[0]
        ),
    ]
    for refused in refused_batches:
        assert stack.call("counter", apply, [refused]) == grpc.StatusCode.INVALID_ARGUMENT
    for reel_ids, view_deltas in (([2**63], [-1]), ([7], [-(2**63)])):
        correction = counter_pb2.CorrectionBatch(
            batch_id="bigint", reel_ids=reel_ids, view_deltas=view_deltas, like_deltas=[0]
        )
        assert (
            stack.call("counter", correct, [correction.SerializeToString()])
            == grpc.StatusCode.INVALID_ARGUMENT
        )
    accepted = batch(1, view_reel_ids=[2**63 - 1], view_minutes=[1], view_counts=[3])
    assert stack.call("counter", apply, [accepted]) == grpc.StatusCode.OK
    time.sleep(2)  # several snapshot intervals (0.5 s): the batch's reel is written
    stack.assert_healthy()


def test_memory_stays_bounded_and_every_process_stays_serving(
    stack: FuzzStack, baseline_rss: dict[str, int]
) -> None:
    """Runs last in the module (pytest keeps file order): after every fuzz case above."""
    stack.assert_healthy()
    after = stack.rss_bytes()
    print({name: (baseline_rss[name] >> 20, after[name] >> 20) for name in after}, "MiB")
    for name, rss in after.items():
        assert rss - baseline_rss[name] < MAX_RSS_GROWTH_BYTES, (name, baseline_rss[name], rss)
