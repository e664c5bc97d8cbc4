"""Structured logging: one logfmt line per record (`ts=... level=... service=... msg=...`).

Extra fields passed with `logger.info("msg", extra={"fields": {...}})` are appended as
key=value pairs, so operators can grep and parse lines without a log pipeline.
"""

from __future__ import annotations

import logging
import sys
import time


def _quote(value: object) -> str:
    text = str(value)
    if not text or any(ch in text for ch in ' ="\n'):
        return '"' + text.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n") + '"'
    return text


class LogfmtFormatter(logging.Formatter):
    """Formats records as logfmt with a fixed service name."""

    def __init__(self, service: str) -> None:
        super().__init__()
        self._service = service

    def format(self, record: logging.LogRecord) -> str:
        stamp = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created))
        parts = [
            f"ts={stamp}.{int(record.msecs):03d}Z",
            f"level={record.levelname.lower()}",
            f"service={_quote(self._service)}",
            f"logger={record.name}",
            f"msg={_quote(record.getMessage())}",
        ]
        fields = getattr(record, "fields", None)
        if isinstance(fields, dict):
            parts.extend(f"{key}={_quote(value)}" for key, value in fields.items())
        if record.exc_info:
            parts.append(f"exc={_quote(self.formatException(record.exc_info))}")
        return " ".join(parts)


class DepartedCallerFilter(logging.Filter):
    """Logs grpc.aio's "ExecuteBatchError raised in core" as a warning, not an error.

    grpc.aio reports it when a call's final status cannot be sent because the caller has
    already gone (its deadline passed or it cancelled, before the server noticed). The
    servicer had answered; nothing on the server failed, and the caller has its own status
    (DEADLINE_EXCEEDED or CANCELLED). Seen under `make chaos`: an ApplyBatch waited out a
    QUORUM write timeout while a Cassandra node was down, and the edge had left.
    """

    PREFIX = "ExecuteBatchError raised in core"

    def filter(self, record: logging.LogRecord) -> bool:
        if record.levelno > logging.WARNING:
            message = record.getMessage()
            if message.startswith(self.PREFIX):
                record.levelno, record.levelname = logging.WARNING, "WARNING"
                record.msg = f"{message} (the caller left before its status was sent)"
                record.args = None
        return True


def configure_logging(service: str, level: str = "INFO") -> None:
    """Sends every log record to stderr as logfmt, replacing earlier handlers."""
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(LogfmtFormatter(service))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
    # The Cassandra driver is chatty at INFO about topology; keep its warnings.
    logging.getLogger("cassandra").setLevel(logging.WARNING)
    departed = logging.getLogger("grpc._cython.cygrpc")
    if not any(isinstance(f, DepartedCallerFilter) for f in departed.filters):
        departed.addFilter(DepartedCallerFilter())
