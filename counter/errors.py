"""Errors of the counter tier; grpc_api.py maps them to status codes."""


class CounterError(Exception):
    """Base of the counter tier's domain errors."""


class NotOwner(CounterError):
    """This process does not (or no longer) own the shard: it was fenced or never leased."""


class LeaseExpired(CounterError):
    """The lease ran out because it could not be renewed (Cassandra unreachable).

    Transient: writes stop until a renewal succeeds; if another owner took the shard in the
    meantime, the renewal fails with NotOwner instead.
    """


class WrongShard(CounterError):
    """A batch was sent to a shard that does not own its shard id."""


class SequenceGap(CounterError):
    """A batch skipped sequences: the edge must resend the missing ones first."""


class Overloaded(CounterError):
    """The commit queue is full."""


class RingMismatch(CounterError):
    """The keyspace was written with another number of logical shards (fatal at start)."""
