"""Stable text by local agreement, for spaced scripts and CJK."""

from __future__ import annotations

from server.engine.agreement import LocalAgreement, agreed_prefix


def test_agreement_stops_at_word_boundaries() -> None:
    assert agreed_prefix("alpha bravo char", "alpha bravo charlie") == "alpha bravo"
    assert agreed_prefix("alpha bravo", "alpha bravo charlie") == "alpha bravo"
    assert agreed_prefix("alpha bra", "alpha bravo charlie") == "alpha"
    assert agreed_prefix("", "alpha") == ""
    assert agreed_prefix("alpha", "beta") == ""


def test_agreement_on_cjk_is_per_character() -> None:
    assert agreed_prefix("今天天气很", "今天天气很好") == "今天天气很"
    assert agreed_prefix("今天天气很", "今天天气") == "今天天"
    assert agreed_prefix("今天天气很好我", "今天天气很好你") == "今天天气很好"


def test_stable_only_grows_even_when_the_model_changes_its_mind() -> None:
    agreement = LocalAgreement()
    assert agreement.update("the cat") == ("", "the cat")
    assert agreement.update("the cat sat") == ("the cat", " sat")
    assert agreement.update("the cat sat on") == ("the cat sat", " on")
    # A hypothesis contradicting committed text: show only what is committed.
    assert agreement.update("a cat sat on the") == ("the cat sat", "")
    assert agreement.update("the cat sat on the mat") == ("the cat sat", " on the mat")
    assert agreement.update("the cat sat on the mat") == ("the cat sat on the", " mat")
