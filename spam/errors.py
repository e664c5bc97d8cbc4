"""The spam tier's errors (mapped to gRPC statuses in grpc_api)."""

from __future__ import annotations


class SpamError(Exception):
    """Base of the spam tier's errors."""


class UnknownVerdict(SpamError, KeyError):
    """No verdict has this id."""


class AlreadyReversed(SpamError, ValueError):
    """The verdict was reversed before."""


class CorrectionsPending(SpamError):
    """The counter shards could not be reached; the correction is retried every round."""
