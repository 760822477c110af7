"""The Qwen engine's backend and policy are enum members from the chooser on, while
callers such as benchmarks may still pass their values as text; log lines show values."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest

from server.engine import qwen
from server.engine.qwen import Backend, Policy, build_qwen_engine, choose_backend


@pytest.fixture
def model_dir(tmp_path: Path) -> str:
    (tmp_path / "config.json").write_text("{}")
    return str(tmp_path)


def test_the_chooser_answers_with_a_member(monkeypatch: pytest.MonkeyPatch) -> None:
    assert choose_backend(Backend.TRANSFORMERS) is Backend.TRANSFORMERS
    assert choose_backend("transformers") is Backend.TRANSFORMERS
    assert choose_backend(Backend.AUTO, device="cpu") is Backend.TRANSFORMERS
    monkeypatch.setattr(qwen, "_vllm_installed", lambda: True)
    monkeypatch.setattr(qwen, "_gpu_available", lambda: True)
    assert choose_backend("auto") is Backend.VLLM
    assert choose_backend(Backend.VLLM) is Backend.VLLM


def test_an_unknown_value_names_the_choices(model_dir: str) -> None:
    """The same message as when the choices were text."""
    with pytest.raises(
        ValueError, match=r"unknown backend 'tensorrt'; choose one of auto, vllm, transformers$"
    ):
        build_qwen_engine(model_dir, backend="tensorrt")
    with pytest.raises(
        ValueError, match=r"unknown policy 'fancy'; choose one of windowed, article$"
    ):
        build_qwen_engine(model_dir, policy="fancy")


@pytest.mark.parametrize(
    ("backend", "policy"),
    [("transformers", "windowed"), (Backend.TRANSFORMERS, Policy.WINDOWED)],
    ids=["text", "members"],
)
def test_the_engine_line_shows_values(
    backend: Backend | str,
    policy: Policy | str,
    model_dir: str,
    caplog: pytest.LogCaptureFixture,
) -> None:
    with caplog.at_level(logging.INFO, logger="server.engine.qwen"):
        build_qwen_engine(model_dir, backend, policy)
    assert "backend=transformers policy=windowed model=" in caplog.text
