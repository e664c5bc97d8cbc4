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


class MediaError(EdgeError):
    """A reel's file cannot be served; hls_http.py maps each kind to an HTTP status."""


class MediaNotFound(MediaError):
    """The origin knows no such reel or file (404)."""


class ReelRemoved(MediaError):
    """The reel was taken down (410)."""


class NotPlayableYet(MediaError):
    """The reel exists but this file is not ready (still transcoding)."""


class OriginUnavailable(MediaError):
    """The origin did not answer in time or is down (503 with Retry-After)."""


class MediaTooLarge(MediaError):
    """The origin sent more bytes than the edge accepts for one object."""


class EdgeOverloaded(MediaError):
    """Too many distinct files are being fetched from the origin at once (503)."""
