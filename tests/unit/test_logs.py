"""Structured logging: grpc's report of a caller that left is a warning."""

from __future__ import annotations

import logging

import pytest

from reelstream.logs import LogfmtFormatter, configure_logging


def test_a_status_the_caller_left_before_is_logged_as_a_warning_and_other_errors_stay(
    capsys: pytest.CaptureFixture[str],
) -> None:
    root = logging.getLogger()
    handlers, level = root.handlers[:], root.level
    configure_logging("unit")
    grpc_core = logging.getLogger("grpc._cython.cygrpc")
    try:
        raise RuntimeError("Failed execute_batch")
    except RuntimeError:
        grpc_core.exception(
            "%s raised in core by servicer method [%s]", "ExecuteBatchError", "/a.B/C"
        )
        grpc_core.exception("Unexpected [ValueError] raised by servicer method [/a.B/C]")
    finally:
        root.handlers[:] = handlers
        root.setLevel(level)
    lines = capsys.readouterr().err.splitlines()
    departed = [line for line in lines if "ExecuteBatchError raised in core" in line]
    assert len(departed) == 1
    assert "level=warning" in departed[0]
    assert "the caller left before its status was sent" in departed[0]
    assert "Failed execute_batch" in departed[0]
    unexpected = [line for line in lines if "Unexpected [ValueError]" in line]
    assert len(unexpected) == 1
    assert "level=error" in unexpected[0]


def test_logfmt_quotes_values_with_spaces_and_newlines() -> None:
    record = logging.LogRecord("x", logging.INFO, __file__, 1, 'a "b"\nc', None, None)
    line = LogfmtFormatter("svc").format(record)
    assert 'msg="a \\"b\\"\\nc"' in line
    assert "service=svc" in line
