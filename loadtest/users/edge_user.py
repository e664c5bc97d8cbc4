"""What every simulated app user shares: a nearest edge (with failover) and sending events
there as columnar batches, checking each refusal against what this kind of user expects."""

from __future__ import annotations

import random
import time
from dataclasses import dataclass, field

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc
from locust.env import Environment

from loadtest import suite_config
from loadtest.custom_stats import UnexpectedRejection, fire_sample
from loadtest.edge_resolver import by_latency
from loadtest.grpc_user import GrpcUser
from protos import common_pb2, edge_pb2, edge_pb2_grpc
from reelstream.channels import EDGE_POLICY
from reelstream.user_tokens import mint, parse_keys

PROBES_PER_EDGE = 2
TOKEN_TTL_S = 3_600
COUNTRIES = (b"US", b"IN", b"BR", b"ID", b"DE", b"GB", b"MX", b"JP")
DEVICES = (common_pb2.DEVICE_KIND_IOS, common_pb2.DEVICE_KIND_ANDROID, common_pb2.DEVICE_KIND_WEB)
# Refusals that are the product working as designed for real viewers: a swipe below the
# view threshold, a repeated view of a hot reel within the dedupe window.
VIEWER_EXPECTED_REASONS = frozenset(
    (common_pb2.REJECT_REASON_BELOW_VIEW_THRESHOLD, common_pb2.REJECT_REASON_DUPLICATE_VIEW)
)


@dataclass
class PendingEvents:
    """Events collected for one SendEvents call."""

    reel_ids: list[int] = field(default_factory=list)
    kinds: list[int] = field(default_factory=list)
    watch_ms: list[int] = field(default_factory=list)

    def add(self, reel_id: int, kind: int, watch_ms: int = 0) -> None:
        self.reel_ids.append(reel_id)
        self.kinds.append(kind)
        self.watch_ms.append(watch_ms)


class EdgeUser(GrpcUser):
    """A device with an app: one user id, one country and device, one nearest edge."""

    abstract = True
    expected_reasons: frozenset[int] = VIEWER_EXPECTED_REASONS

    def __init__(self, environment: Environment) -> None:
        super().__init__(environment)
        self.settings = suite_config.settings()
        self.rng: random.Random = suite_config.new_rng()
        self.user_id = self.rng.randint(1, self.settings.users)
        self.country = self.rng.choice(COUNTRIES)
        self.device = self.rng.choice(DEVICES)
        self.ip_hash = self.rng.getrandbits(64)
        self.edge_order: list[str] = list(self.settings.edges)
        self._token_keys = parse_keys(self.settings.user_token_keys)
        self._tokens: dict[int, tuple[str, float]] = {}

    @property
    def edge_address(self) -> str:
        return self.edge_order[0]

    @property
    def edge_index(self) -> int:
        """Position of the current edge in the configured list (its HTTP port follows)."""
        return self.settings.edges.index(self.edge_address)

    @property
    def edge(self) -> edge_pb2_grpc.EdgeServiceStub:
        if self.settings.edge_balancing == "round_robin":
            return edge_pb2_grpc.EdgeServiceStub(
                self.balanced_channel(self.settings.edges, EDGE_POLICY)
            )
        return edge_pb2_grpc.EdgeServiceStub(self.channel(self.edge_address))

    def resolve_edge(self) -> None:
        """Measures each edge's health-check latency and orders them nearest first."""
        latencies: dict[str, list[float | None]] = {}
        for address in self.settings.edges:
            health = health_pb2_grpc.HealthStub(self.channel(address))
            probes: list[float | None] = []
            for _ in range(PROBES_PER_EDGE):
                started = time.perf_counter()
                try:
                    health.Check(health_pb2.HealthCheckRequest(), timeout=2.0)
                    probes.append(time.perf_counter() - started)
                except grpc.RpcError:
                    probes.append(None)
            latencies[address] = probes
        self.edge_order = by_latency(latencies)

    def fail_over(self) -> None:
        """The current edge is unavailable: the next nearest becomes current."""
        self.edge_order = self.edge_order[1:] + self.edge_order[:1]

    def send(self, pending: PendingEvents) -> edge_pb2.SendEventsResponse | None:
        """Sends the events as one columnar batch; refusals are reported per reason."""
        if not pending.reel_ids:
            return None
        count = len(pending.reel_ids)
        batch = common_pb2.EventBatch(
            reel_ids=pending.reel_ids,
            user_ids=[self.user_id] * count,
            kinds=pending.kinds,  # type: ignore[arg-type]
            watch_ms=pending.watch_ms,
            client_ts_ms=[int(time.time() * 1000)] * count,
            countries=self.country * count,
            devices=[self.device] * count,
            ip_hashes=[self.ip_hash] * count,
        )
        return self.send_batch(batch, self.user_id)

    def send_batch(
        self, batch: common_pb2.EventBatch, user_id: int
    ) -> edge_pb2.SendEventsResponse | None:
        """Sends a batch of `user_id`'s events, signed as that user when the suite holds
        the token keys; refusals are reported per reason."""
        try:
            response: edge_pb2.SendEventsResponse = self.edge.SendEvents(
                batch, timeout=self.settings.rpc_timeout_s, metadata=self.auth_metadata(user_id)
            )
        except grpc.RpcError as exc:
            if exc.code() == grpc.StatusCode.UNAVAILABLE:
                self.fail_over()
            return None
        self.report_rejections(response)
        return response

    def auth_metadata(self, user_id: int) -> tuple[tuple[str, str | bytes], ...]:
        """`authorization: Bearer <token for user_id>` (cached until near its expiry), or
        nothing without token keys (the channel may still add REELSTREAM_LOADTEST_TOKEN)."""
        if not self._token_keys:
            return ()
        now = time.time()
        token, expires = self._tokens.get(user_id, ("", 0.0))
        if expires - now < 60:
            expires = now + TOKEN_TTL_S
            token = mint(self._token_keys, next(iter(self._token_keys)), user_id, int(expires))
            self._tokens[user_id] = (token, expires)
        return (("authorization", f"Bearer {token}"),)

    def report_rejections(self, response: edge_pb2.SendEventsResponse) -> None:
        for rejection in response.rejections:
            reason = common_pb2.RejectReason.Name(rejection.reason)
            unexpected = rejection.reason not in self.expected_reasons
            fire_sample(
                self.environment,
                "rejected",
                reason,
                0.0,
                self.context(),
                UnexpectedRejection(rejection.message) if unexpected else None,
            )

    def read_counts(self, reel_ids: list[int]) -> None:
        try:
            self.edge.GetCounts(
                common_pb2.GetCountsRequest(reel_ids=reel_ids), timeout=self.settings.rpc_timeout_s
            )
        except grpc.RpcError as exc:
            if exc.code() == grpc.StatusCode.UNAVAILABLE:
                self.fail_over()

    def pause(self, simulated_s: float) -> None:
        """Waits `simulated_s` of user time, scaled by the suite's time_scale (Locust's
        gevent patches time.sleep, so other users run meanwhile)."""
        time.sleep(simulated_s * self.settings.time_scale)
