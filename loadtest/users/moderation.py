"""Reporters and moderators against the moderation service (protos/moderation.proto).

Off by default (see `load_settings.DEFAULT_WEIGHTS`). Moderators keep or age-restrict what
they review and never remove: a takedown would purge reels the other simulated users are
playing; takedowns are proven by tests/integration/test_moderation_e2e.py instead."""

from __future__ import annotations

import grpc
from locust import between, task
from locust.env import Environment

from loadtest import suite_config
from loadtest.grpc_user import GrpcUser
from protos import moderation_pb2, moderation_pb2_grpc
from reelstream.caller_policy import MODERATOR

WEIGHTS = suite_config.settings().weight_table()
REPORT_REASONS = (
    moderation_pb2.REPORT_REASON_SPAM,
    moderation_pb2.REPORT_REASON_NUDITY,
    moderation_pb2.REPORT_REASON_VIOLENCE,
    moderation_pb2.REPORT_REASON_HARASSMENT,
    moderation_pb2.REPORT_REASON_OTHER,
)


class _ModerationUser(GrpcUser):
    abstract = True

    def __init__(self, environment: Environment) -> None:
        super().__init__(environment)
        self.settings = suite_config.settings()
        self.rng = suite_config.new_rng()

    @property
    def moderation(self) -> moderation_pb2_grpc.ModerationServiceStub:
        return moderation_pb2_grpc.ModerationServiceStub(self.channel(self.settings.moderation))


class Reporter(_ModerationUser):
    """A viewer who reports reels (mostly popular ones, which is where reports pile up)."""

    weight = WEIGHTS["reporter"]
    wait_time = between(5, 15)

    @task
    def report_reel(self) -> None:
        request = moderation_pb2.ReportReelRequest(
            reel_id=suite_config.reel_picker().pick(self.rng),
            reporter_id=self.rng.randint(1, self.settings.users),
            reason=self.rng.choice(REPORT_REASONS),
        )
        try:
            self.moderation.ReportReel(request, timeout=self.settings.rpc_timeout_s)
        except grpc.RpcError:
            return


class Moderator(_ModerationUser):
    """Works the review queue: claim an item, look at it, decide."""

    weight = WEIGHTS["moderator"]
    wait_time = between(2, 5)
    identity = MODERATOR  # only moderators may claim and decide reviews

    def on_start(self) -> None:
        self.moderator_id = f"loadtest-moderator-{self.rng.randrange(10_000)}"

    @task
    def review_next(self) -> None:
        try:
            item = self.moderation.ClaimReview(
                moderation_pb2.ClaimReviewRequest(moderator_id=self.moderator_id, lease_seconds=60),
                timeout=self.settings.rpc_timeout_s,
            )
        except grpc.RpcError:
            return
        if not item.item_id:
            return  # empty queue
        decision = (
            moderation_pb2.DECISION_AGE_RESTRICT
            if item.priority > 0.9
            else moderation_pb2.DECISION_KEEP
        )
        try:
            self.moderation.DecideReview(
                moderation_pb2.DecideReviewRequest(
                    item_id=item.item_id,
                    moderator_id=self.moderator_id,
                    decision=decision,
                    reason="load test decision",
                ),
                timeout=self.settings.rpc_timeout_s,
            )
        except grpc.RpcError:
            return
