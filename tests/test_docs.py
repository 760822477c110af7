"""The configuration reference and the README stay true to the code."""

from __future__ import annotations

import argparse
import dataclasses
import re
from pathlib import Path

import pytest

from desktop import app as desktop_app
from desktop import cli
from desktop.settings import Settings
from server import config as server_config

ROOT = Path(__file__).resolve().parents[1]
REFERENCE = (ROOT / "docs" / "configuration.md").read_text(encoding="utf-8")


def listed_options(parser: argparse.ArgumentParser) -> set[str]:
    """The long options ``--help`` lists: each entry starts a line, indented two spaces
    (``  -v, --verbose``); wrapped help text and usage lines are indented further."""
    entries = re.findall(r"^  (-\S.*?)(?: {2,}|$)", parser.format_help(), re.M)
    words = (part.split()[0] for entry in entries for part in entry.split(", "))
    return {word for word in words if word.startswith("--") and word != "--help"}


#: The server's options come from its own table; --version is the parser's.
SERVER_OPTIONS = {option.flag for option in server_config.OPTIONS} | {"--version"}


def section(title: str) -> str:
    """The reference's text from the heading ``title`` to the next heading of its level."""
    match = re.search(rf"^(#+) {re.escape(title)}\n(.*?)(?=^\1 |\Z)", REFERENCE, re.M | re.S)
    assert match, f"docs/configuration.md has no section {title!r}"
    return match.group(2)


@pytest.mark.parametrize(
    ("title", "options"),
    [
        ("`tingxie-server`", SERVER_OPTIONS),
        ("`tingxie-cli`", listed_options(cli.build_parser())),
        ("`tingxie` (the tray app)", listed_options(desktop_app.build_parser())),
    ],
    ids=["server", "cli", "app"],
)
def test_every_option_is_in_the_reference(title: str, options: set[str]) -> None:
    assert len(options) > 3
    text = section(title)
    missing = sorted(o for o in options if f"`{o}`" not in text)
    assert not missing, f"add to docs/configuration.md ({title}): {missing}"


def test_help_lists_exactly_the_server_table() -> None:
    """What the cli and app checks read from ``--help`` is every option, and no more."""
    assert listed_options(server_config.build_parser()) == SERVER_OPTIONS
    assert {"--verbose", "--fast", "--url"} <= listed_options(cli.build_parser())


def test_every_setting_is_in_the_reference() -> None:
    text = section("Settings")
    documented = set(re.findall(r"^\| `(\w+)` \|", text, re.M))
    fields = {f.name for f in dataclasses.fields(Settings)}
    assert fields - documented == set(), "settings missing from docs/configuration.md"
    assert documented - fields == set(), "docs/configuration.md lists settings that do not exist"


def test_documented_server_defaults_match_the_parser() -> None:
    defaults = vars(server_config.build_parser().parse_args([]))
    rows = re.findall(r"^\| `(--[\w-]+)` \| `([^`]*)` \|", section("`tingxie-server`"), re.M)
    assert len(rows) > 20
    for option, documented in rows:
        actual = defaults[option[2:].replace("-", "_")]
        expected = f"{actual:g}" if isinstance(actual, float) else str(actual)
        assert documented == expected, option


def test_readme_links_resolve() -> None:
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    targets = re.findall(r"\]\(((?!https?:)[^)#]+)", readme)
    assert targets
    missing = [t for t in targets if not (ROOT / t).exists()]
    assert not missing, f"README links to missing files: {missing}"
