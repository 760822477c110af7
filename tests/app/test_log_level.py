"""The tray app's --log-level offers the server's levels (protocol.log_level), no more."""

from __future__ import annotations

import pytest

from desktop.app import build_parser
from protocol.log_level import DEFAULT_LOG_LEVEL, LogLevel


def test_the_app_offers_exactly_the_shared_levels() -> None:
    parser = build_parser()
    assert "{" + ",".join(level.value for level in LogLevel) + "}" in parser.format_help()
    assert parser.parse_args([]).log_level == DEFAULT_LOG_LEVEL.value
    for level in LogLevel:
        assert LogLevel(parser.parse_args(["--log-level", level.value]).log_level) is level
    with pytest.raises(SystemExit):
        parser.parse_args(["--log-level", "TRACE"])
