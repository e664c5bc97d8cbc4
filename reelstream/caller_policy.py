"""Who may call what: each RPC method mapped to the identities allowed to call it.

The identity is the subject CN of the caller's certificate, verified by mutual TLS
(reelstream/transport_security.py, identities made by `make certs`). A method missing from
`POLICY` is refused to everyone (a unit test checks that every RPC of protos/ has an entry,
so a new RPC cannot ship unreachable or open by accident). Health checking and reflection
are open to every caller. Refusals are PERMISSION_DENIED naming the identity and the method.

With `REELSTREAM_PLAINTEXT=1` there are no certificates, hence no identities, and the
interceptor is not installed (development only; docs/security.md).
"""

from __future__ import annotations

from collections.abc import Mapping

import grpc

from reelstream.call_guards import Context, GuardInterceptor, peer_identity

# Identities (certificate CNs); see reelstream/infra/dev_certs.py.
EDGE, COUNTER, ORIGIN, SPAM, MODERATION = "edge", "counter", "origin", "spam", "moderation"
MODERATOR = "moderator"  # the review console / CLI of human moderators
ADMIN = "admin"  # operators' tools: probes, catalog imports, reports
APP = "app"  # viewers' and creators' apps, and the load generator acting as them

# Services that read counts and reel metadata from each other.
INTERNAL_READERS = frozenset({EDGE, COUNTER, ORIGIN, SPAM, MODERATION, ADMIN})
# What a viewer's or creator's app does (the edge also checks the user token).
APP_CALLERS = frozenset({APP, ADMIN})

OPEN_SERVICES = (
    "/grpc.health.v1.Health/",
    "/grpc.reflection.v1alpha.ServerReflection/",
    "/grpc.reflection.v1.ServerReflection/",
)

POLICY: Mapping[str, frozenset[str]] = {
    # Counter shards: only edges apply view/like batches; only the spam service corrects.
    "/reelstream.v1.CounterService/ApplyBatch": frozenset({EDGE}),
    "/reelstream.v1.CounterService/ApplyCorrections": frozenset({SPAM}),
    "/reelstream.v1.CounterService/GetCounts": INTERNAL_READERS,
    "/reelstream.v1.CounterService/GetTimeSeries": INTERNAL_READERS,
    "/reelstream.v1.CounterService/GetLikeState": INTERNAL_READERS,
    "/reelstream.v1.CounterService/WatchCounts": INTERNAL_READERS,
    "/reelstream.v1.CounterService/FollowCounts": INTERNAL_READERS,
    "/reelstream.v1.CounterService/GetShardInfo": INTERNAL_READERS,
    "/reelstream.v1.CounterService/GetShardMap": INTERNAL_READERS,
    # Edges: the app-facing intake and reads; purges come from whoever takes reels down.
    "/reelstream.v1.EdgeService/SendEvents": APP_CALLERS,
    "/reelstream.v1.EdgeService/StreamEvents": APP_CALLERS,
    "/reelstream.v1.EdgeService/SendEvent": APP_CALLERS,
    "/reelstream.v1.EdgeService/GetCounts": APP_CALLERS,
    "/reelstream.v1.EdgeService/WatchCounts": APP_CALLERS,
    "/reelstream.v1.EdgeService/GetLikeState": APP_CALLERS,
    # The origin owns the catalog; takedowns run in the moderation service (moderation/
    # takedown.py), which changes the catalog's state and then purges every edge.
    "/reelstream.v1.EdgeService/PurgeReel": frozenset({ORIGIN, MODERATION}),
    # Origin: uploads from creators' apps; reads by the tiers that serve or judge reels.
    "/reelstream.v1.OriginService/Upload": APP_CALLERS,
    "/reelstream.v1.OriginService/GetReel": INTERNAL_READERS | APP_CALLERS,
    "/reelstream.v1.OriginService/GetReels": INTERNAL_READERS | APP_CALLERS,
    "/reelstream.v1.OriginService/ImportReels": frozenset({ADMIN}),
    "/reelstream.v1.OriginService/GetManifest": INTERNAL_READERS,
    "/reelstream.v1.OriginService/GetSegment": INTERNAL_READERS,
    # Spam filter: edges feed it and follow its blocklist; moderators reverse verdicts.
    "/reelstream.v1.SpamService/SubmitEvents": frozenset({EDGE}),
    "/reelstream.v1.SpamService/WatchBlocklist": frozenset({EDGE}),
    "/reelstream.v1.SpamService/ReverseVerdict": frozenset({MODERATOR, MODERATION}),
    "/reelstream.v1.SpamService/GetSpamReport": frozenset({MODERATOR, MODERATION, ADMIN}),
    # Moderation: viewers report and creators appeal; only moderators work the queue.
    "/reelstream.v1.ModerationService/ReportReel": APP_CALLERS,
    "/reelstream.v1.ModerationService/Appeal": APP_CALLERS,
    "/reelstream.v1.ModerationService/ListReviewQueue": frozenset({MODERATOR, ADMIN}),
    "/reelstream.v1.ModerationService/ClaimReview": frozenset({MODERATOR}),
    "/reelstream.v1.ModerationService/DecideReview": frozenset({MODERATOR}),
    "/reelstream.v1.ModerationService/GetAuditTrail": frozenset({MODERATOR, ADMIN}),
    "/reelstream.v1.ModerationService/AnalyzeReel": frozenset({ORIGIN}),
    "/reelstream.v1.ModerationService/AddToBank": frozenset({MODERATOR}),
    "/reelstream.v1.ModerationService/RemoveFromBank": frozenset({MODERATOR}),
    "/reelstream.v1.ModerationService/LookupBank": frozenset({MODERATOR, ORIGIN, ADMIN}),
}


def refusal(identity: str | None, method: str) -> str | None:
    """Why `identity` may not call `method`, or None when it may."""
    if method.startswith(OPEN_SERVICES):
        return None
    allowed = POLICY.get(method)
    if allowed is None:
        return f"{method} is not open to any caller (no entry in reelstream/caller_policy.py)"
    if identity in allowed:
        return None
    who = f"identity {identity!r}" if identity else "a caller without a client certificate"
    return f"{who} may not call {method} (allowed: {', '.join(sorted(allowed))})"


async def _authorise(method: str, context: Context) -> None:
    reason = refusal(peer_identity(context), method)
    if reason is not None:
        await context.abort(grpc.StatusCode.PERMISSION_DENIED, reason)


class CallerPolicyInterceptor(GuardInterceptor):
    """Refuses calls whose caller identity `POLICY` does not allow."""

    def __init__(self) -> None:
        super().__init__(_authorise)
