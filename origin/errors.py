"""The origin's domain errors; `grpc_api.py` maps each to one status code."""

from __future__ import annotations


class OriginError(Exception):
    """Base of every error the origin reports to a caller."""


class UploadRejected(OriginError):
    """The upload breaks the protocol or a limit (INVALID_ARGUMENT)."""


class UnplayableMedia(UploadRejected):
    """The uploaded file is not a playable video (INVALID_ARGUMENT with the reason)."""


class UploadConflict(OriginError):
    """The upload cannot proceed in its current state, e.g. another stream is sending it or
    a chunk leaves a gap (FAILED_PRECONDITION)."""


class OriginBusy(OriginError):
    """A bound was reached: too many uploads at once or a full transcode queue
    (RESOURCE_EXHAUSTED); the client may retry later."""


class StorageFull(OriginBusy):
    """The media folder has no room for the upload or its transcode (RESOURCE_EXHAUSTED);
    nothing of the refused upload is kept, so the client uploads again once space is freed."""


class MediaNotFound(OriginError):
    """Unknown reel, unknown upload or no such file (NOT_FOUND)."""


class NotPlayable(OriginError):
    """The reel exists but cannot be served (yet): processing, failed, removed
    (FAILED_PRECONDITION; the message says "removed" for a removed reel)."""


class ToolFailed(Exception):
    """ffmpeg or ffprobe exited with an error or ran out of time (internal, never shown raw)."""

    def __init__(self, message: str, stderr_tail: str = "") -> None:
        super().__init__(message)
        self.stderr_tail = stderr_tail
