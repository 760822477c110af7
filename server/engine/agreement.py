"""Stable/unstable split of running hypotheses by local agreement (pure).

Text that two consecutive hypotheses agree on, cut back to a word boundary, is
stable: it is shown as final-looking text and never taken back. Works for
space-separated scripts and for CJK, where every character is a boundary.
"""

from __future__ import annotations

from dataclasses import dataclass


def _is_cjk(char: str) -> bool:
    code = ord(char)
    return (
        0x3000 <= code <= 0x9FFF  # CJK punctuation, kana, unified ideographs
        or 0xAC00 <= code <= 0xD7AF  # Hangul syllables
        or 0xF900 <= code <= 0xFAFF  # compatibility ideographs
        or 0xFF00 <= code <= 0xFFEF  # full-width forms
        or 0x20000 <= code <= 0x2FA1F  # extension ideographs
    )


def is_boundary(text: str, k: int) -> bool:
    """Whether ``text[:k]`` ends on a whole word (never inside a word or character)."""
    if k <= 0:
        return True
    if k >= len(text):
        return False  # the last word may still be growing
    return text[k].isspace() or _is_cjk(text[k - 1]) or _is_cjk(text[k])


def agreed_prefix(previous: str, current: str) -> str:
    """Longest common prefix of two hypotheses that ends on a word boundary of both."""
    k = 0
    limit = min(len(previous), len(current))
    while k < limit and previous[k] == current[k]:
        k += 1
    # The previous hypothesis may end right at k (its last word, now followed by more
    # text in the current one); the current one must show a boundary after it.
    while k > 0 and not (
        is_boundary(current, k) and (k == len(previous) or is_boundary(previous, k))
    ):
        k -= 1
    return current[:k]


@dataclass
class LocalAgreement:
    """Tracks the stable text of one utterance across partial hypotheses."""

    stable: str = ""
    _previous: str = ""

    def update(self, hypothesis: str) -> tuple[str, str]:
        """Feed a new full hypothesis; return ``(stable, unstable)``.

        ``stable`` only ever grows. A hypothesis that contradicts text already
        committed as stable shows only the stable text until the model agrees again.
        """
        agreed = agreed_prefix(self._previous, hypothesis)
        if len(agreed) > len(self.stable) and agreed.startswith(self.stable):
            self.stable = agreed
        self._previous = hypothesis
        if hypothesis.startswith(self.stable):
            return self.stable, hypothesis[len(self.stable) :]
        return self.stable, ""
