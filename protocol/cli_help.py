"""``--help`` for tingxie-server and tingxie-cli: every option with a true default.

Both parsers use argparse's :class:`~argparse.ArgumentDefaultsHelpFormatter`, which adds
"(default: %(default)s)" to every help that does not mention ``%(default)`` itself. For an
option whose default is decided elsewhere (the engine's own, vLLM's own, an environment
variable) that would print "(default: None)", or an environment variable's value, a token
included. Such an option states its default in words with :func:`own_default`, whose
``%(default).0s`` formats to nothing: the formatter sees the mention and adds nothing.
"""

from __future__ import annotations

__all__ = ["own_default"]

#: A ``%(default)`` mention that prints nothing (a zero-width string conversion).
_SILENT_DEFAULT = "%(default).0s"


def own_default(words: str) -> str:
    """``(default: WORDS)`` for an option's help, in place of argparse's own."""
    return f"(default: {words}){_SILENT_DEFAULT}"
