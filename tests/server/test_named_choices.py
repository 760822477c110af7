"""The server's named choices (--engine, --backend, --policy, --log-level): each is one
enum, the options offer exactly its values, and the configuration holds its members."""

from __future__ import annotations

import logging
from enum import Enum

import pytest

from protocol.log_level import LogLevel
from server.app import build_engine
from server.config import OPTIONS, EngineKind, parse_config
from server.engine.full_decode import FullDecodeEngine
from server.engine.qwen import Backend, Policy

#: Each option that names a choice, the enum that defines its choices, and the setting.
CHOICES: list[tuple[str, type[Enum], str]] = [
    ("--engine", EngineKind, "engine"),
    ("--backend", Backend, "backend"),
    ("--policy", Policy, "policy"),
    ("--log-level", LogLevel, "log_level"),
]
IDS = [flag for flag, _, _ in CHOICES]


@pytest.mark.parametrize(("flag", "kind", "dest"), CHOICES, ids=IDS)
def test_an_option_offers_exactly_its_enum(flag: str, kind: type[Enum], dest: str) -> None:
    """A member added to the enum cannot be left out of --help, nor a stale one kept."""
    found = next(o for o in OPTIONS if o.flag == flag)
    assert found.dest == dest
    assert found.choices == tuple(member.value for member in kind)
    assert found.default in found.choices


@pytest.mark.parametrize(("flag", "kind", "dest"), CHOICES, ids=IDS)
def test_every_value_becomes_its_member(flag: str, kind: type[Enum], dest: str) -> None:
    """From a flag or a variable alike, the configuration holds the member, not text."""
    variable = "TINGXIE_" + dest.upper()
    for member in kind:
        by_flag = getattr(parse_config([flag, member.value], env={}), dest)
        by_variable = getattr(parse_config([], env={variable: member.value}), dest)
        assert by_flag is member and by_variable is member


def test_defaults_are_members() -> None:
    config = parse_config([], env={})
    assert config.engine is EngineKind.QWEN and config.backend is Backend.AUTO
    assert config.policy is Policy.WINDOWED and config.log_level is LogLevel.INFO


def test_the_fake_engine_is_built_from_its_member() -> None:
    engine = build_engine(parse_config(["--engine", "fake"], env={}))
    assert isinstance(engine, FullDecodeEngine)


def test_log_levels_are_logging_level_names() -> None:
    """The server and the tray app hand the value to logging as a level name."""
    for level in LogLevel:
        assert isinstance(logging.getLevelName(level.value), int), level
