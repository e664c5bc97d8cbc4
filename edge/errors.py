"""Errors of the edge tier; grpc_api.py maps them to status codes."""


class EdgeError(Exception):
    """Base of the edge tier's domain errors."""


class MalformedBatch(EdgeError):
    """The batch as a whole is unusable (columns of different lengths, too large)."""


class JournalFull(EdgeError):
    """Too many events wait for the counter shards; the caller should back off."""


class JournalUnavailable(EdgeError):
    """The local Redis did not confirm the write; nothing was acknowledged."""


class ShardUnavailable(EdgeError):
    """A counter shard needed for a read did not answer."""
