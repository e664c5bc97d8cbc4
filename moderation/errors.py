"""The moderation tier's errors (mapped to gRPC statuses in grpc_api)."""

from __future__ import annotations


class ModerationError(Exception):
    """Base of the moderation tier's errors."""


class UnknownBank(ModerationError, KeyError):
    """No hash bank has this name."""


class UnknownReel(ModerationError, KeyError):
    """The origin's catalog has no such reel."""


class UnknownItem(ModerationError, KeyError):
    """No review item has this id."""


class NotClaimed(ModerationError):
    """The moderator holds no valid lease on the item (never claimed, expired, or decided)."""


class ClaimRefused(ModerationError):
    """This item may not be claimed by this moderator now (another one holds it, or it is an
    appeal of their own decision)."""


class AppealRefused(ModerationError):
    """Not the reel's creator, nothing to appeal, or this decision was appealed already."""


class AnalysisBusy(ModerationError):
    """Too many analyses are queued."""
