"""``--help`` for tingxie-server and tingxie-cli: every option with a true default.

argparse's :class:`~argparse.ArgumentDefaultsHelpFormatter` prints "(default: None)"
for an option whose default is decided elsewhere (the engine's own, vLLM's own, an
environment variable) and prints an environment variable's value as the default, a
token included. With this formatter such an option states its default in its own help
("(default: vLLM's own)"), which is then printed as written.
"""

from __future__ import annotations

import argparse

__all__ = ["OWN_DEFAULT", "DefaultsHelpFormatter"]

#: A help that contains this states its default itself.
OWN_DEFAULT = "(default:"


class DefaultsHelpFormatter(argparse.ArgumentDefaultsHelpFormatter):
    """Adds "(default: VALUE)" to each option's help unless the help says it already."""

    def _get_help_string(self, action: argparse.Action) -> str | None:
        if action.help is not None and OWN_DEFAULT in action.help:
            return action.help
        return super()._get_help_string(action)
