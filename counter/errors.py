"""Errors of the counter tier; grpc_api.py maps them to status codes."""


class CounterError(Exception):
    """Base of the counter tier's domain errors."""


class NotOwner(CounterError):
    """This process does not (or no longer) own the shard: it was fenced or never leased."""


class WrongShard(CounterError):
    """A batch was sent to a shard that does not own its shard id."""


class SequenceGap(CounterError):
    """A batch skipped sequences: the edge must resend the missing ones first."""


class Overloaded(CounterError):
    """The commit queue is full."""
