"""Pure pieces of the Qwen policy: text rollback/parsing, audio energy, config, paths."""

from __future__ import annotations

import itertools
import os
from pathlib import Path

import numpy as np
import pytest

from server.engine.qwen import choose_backend
from server.engine.qwen.errors import (
    KVCacheError,
    ModelLoadError,
    ModelNotFoundError,
    is_memory_error,
    kv_cache_message,
    resolve_model_path,
)
from server.engine.qwen.policy import (
    WindowedConfig,
    collapse_repeats,
    find_cut,
    frame_rms,
    join_text,
    normalize_language,
    raw_language,
    rollback_prefix,
    speech_seconds,
    split_for_final,
    transcript_of,
)
from tests.qwen.helpers import SR, ByteText, noise, speechlike

# -- language ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("given", "expected"),
    [
        (None, None),
        ("", None),
        ("auto", None),
        ("english", "English"),
        ("CHINESE", "Chinese"),
        ("zh", "Chinese"),
        ("zh-CN", "Chinese"),
        ("en_US", "English"),
        ("yue", "Cantonese"),
    ],
)
def test_normalize_language(given: str | None, expected: str | None) -> None:
    assert normalize_language(given) == expected


def test_unsupported_language_names_the_choices() -> None:
    with pytest.raises(ValueError, match=r"unsupported language 'klingon'.*English"):
        normalize_language("klingon")


# -- text ----------------------------------------------------------------------------------


def test_rollback_drops_tokens_and_never_ends_in_a_broken_character() -> None:
    text = ByteText()
    assert rollback_prefix(text, "hello world", 5) == "hello "
    assert rollback_prefix(text, "hello", 0) == "hello"
    assert rollback_prefix(text, "hi", 5) == ""
    # "你好吗" is 9 bytes; dropping 2 tokens would cut inside 吗 → roll back to "你好".
    assert rollback_prefix(text, "你好吗", 2) == "你好"
    # dropping 4 cuts inside 好 → "你"
    assert rollback_prefix(text, "你好吗", 4) == "你"
    for k in range(12):
        out = rollback_prefix(text, "ab你好吗cd", k)
        assert "\ufffd" not in out
        assert "ab你好吗cd".startswith(out)


def test_transcript_of_raw_outputs() -> None:
    assert transcript_of("language English<asr_text>hello there", None) == "hello there"
    assert transcript_of("language Eng", None) == ""  # header still being written
    assert transcript_of("langu", None) == ""
    assert transcript_of("language None<asr_text>", None) == ""
    assert transcript_of("plain text", None) == "plain text"
    assert transcript_of(" forced text", "English") == "forced text"
    # monotone along a growing raw output
    raw = "language English<asr_text>the quick brown"
    outs = [transcript_of(raw[:i], None) for i in range(len(raw) + 1)]
    for a, b in itertools.pairwise(outs):
        assert b.startswith(a)


def test_raw_language() -> None:
    assert raw_language("language Chinese<asr_text>你好") == "Chinese"
    assert raw_language("language None<asr_text>") is None
    assert raw_language("language Chin") is None
    assert raw_language("no header") is None


def test_join_text_spaces_words_not_cjk() -> None:
    assert join_text("hello", "world") == "hello world"
    assert join_text("hello ", "world") == "hello world"
    assert join_text("你好", "世界") == "你好世界"
    assert join_text("hello", "世界") == "hello世界"
    assert join_text("", "x") == "x" and join_text("x", "") == "x"


def test_repetition_guard_cuts_a_loop_after_its_first_occurrence() -> None:
    assert collapse_repeats("the cat sat") == ("the cat sat", False)
    assert collapse_repeats("ok go go go go go go") == ("ok go", True)
    assert collapse_repeats("好的好的好的好的好的") == ("好的", True)
    looped, hit = collapse_repeats("a" * 30)
    assert (looped, hit) == ("a", True)
    # ordinary repetition below the threshold survives
    assert collapse_repeats("no no no")[1] is False


# -- audio ---------------------------------------------------------------------------------


def test_frame_rms_and_speech_seconds() -> None:
    a = np.concatenate([np.zeros(SR, dtype=np.float32), noise(0.5)])
    rms = frame_rms(a)
    assert rms.shape == (75,)
    assert float(rms[:50].max()) == 0.0 and float(rms[50:].min()) > 0.05
    assert speech_seconds(a, 0.004) == pytest.approx(0.5, abs=0.02)
    assert speech_seconds(np.zeros(SR, dtype=np.float32), 0.004) == 0.0
    assert speech_seconds(np.zeros(0, dtype=np.float32), 0.004) == 0.0


def test_find_cut_prefers_the_middle_of_a_pause() -> None:
    a = speechlike(6.0, gaps=[(3.0, 3.6)])
    cut = find_cut(a, 2 * SR, 5 * SR, pause_sec=0.25, pause_rms=0.01, require_pause=True)
    assert cut is not None and 3.2 * SR <= cut <= 3.4 * SR
    # no pause: soft cut declines, hard cut takes the quietest stretch
    b = noise(6.0)
    assert find_cut(b, SR, 5 * SR, pause_sec=0.25, pause_rms=0.01, require_pause=True) is None
    b[int(4.0 * SR) : int(4.1 * SR)] *= 0.1  # a quiet 100 ms, too short for a pause
    cut = find_cut(b, SR, 5 * SR, pause_sec=0.25, pause_rms=0.01, require_pause=False)
    assert cut is not None and 3.9 * SR <= cut <= 4.2 * SR


def test_split_for_final_tiles_the_audio_within_the_limit() -> None:
    a = speechlike(95.0, gaps=[(27.0, 27.5), (55.0, 55.4)])
    pieces = split_for_final(a, 30.0, pause_rms=0.01)
    assert pieces[0][0] == 0 and pieces[-1][1] == len(a)
    for (_s0, e0), (s1, _) in itertools.pairwise(pieces):
        assert e0 == s1
    assert all(0 < e - s <= 30 * SR for s, e in pieces)
    assert 27.0 * SR <= pieces[0][1] <= 27.5 * SR  # cut in the pause
    assert split_for_final(noise(10.0), 30.0, pause_rms=0.01) == [(0, 10 * SR)]


# -- config --------------------------------------------------------------------------------


def test_config_validation_and_budget() -> None:
    with pytest.raises(ValueError):
        WindowedConfig(segment_soft_sec=30.0, segment_max_sec=20.0)
    with pytest.raises(ValueError):
        WindowedConfig(rollback_tokens=-1)
    cfg = WindowedConfig(max_new_tokens=100, tokens_base=10, tokens_per_sec=5.0)
    assert cfg.token_budget(2.0) == 20
    assert cfg.token_budget(1000.0) == 100
    assert WindowedConfig(tokens_per_sec=None, max_new_tokens=7).token_budget(100.0) == 7


def test_fit_to_model_len_keeps_requests_inside_the_context() -> None:
    cfg = WindowedConfig().fit_to_model_len(1024)
    for sec in (cfg.final_full_max_sec, cfg.final_window_sec, cfg.segment_max_sec):
        assert 64 + 13 * sec + 2 * cfg.token_budget(sec) <= 1024
    assert cfg.segment_soft_sec <= cfg.segment_max_sec
    assert WindowedConfig().fit_to_model_len(4096).final_full_max_sec > 60


# -- model paths, backends, errors ---------------------------------------------------------


def test_local_model_dir_becomes_absolute(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    model = tmp_path / "models" / "tiny"
    model.mkdir(parents=True)
    (model / "config.json").write_text("{}")
    monkeypatch.chdir(tmp_path / "models")
    assert resolve_model_path("tiny") == str(model.resolve())
    assert resolve_model_path("./tiny") == str(model.resolve())
    monkeypatch.chdir(model)
    assert resolve_model_path("../tiny") == str(model.resolve())


def test_missing_local_path_names_the_absolute_path(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    with pytest.raises(ModelNotFoundError, match=str(tmp_path / "nope")):
        resolve_model_path("../" + tmp_path.name + "/nope")
    with pytest.raises(ModelNotFoundError, match="does not exist"):
        resolve_model_path(str(tmp_path / "a" / "b" / "c"))
    with pytest.raises(ModelNotFoundError):
        resolve_model_path("")
    (tmp_path / "empty").mkdir()
    with pytest.raises(ModelNotFoundError, match=r"no config\.json"):
        resolve_model_path("empty")
    (tmp_path / "file.bin").write_text("x")
    with pytest.raises(ModelNotFoundError, match="not a directory"):
        resolve_model_path("file.bin")
    assert issubclass(ModelNotFoundError, FileNotFoundError)


def test_hub_id_passes_through(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    assert resolve_model_path("Qwen/Qwen3-ASR-1.7B") == "Qwen/Qwen3-ASR-1.7B"
    assert resolve_model_path(" Qwen/Qwen3-ASR-0.6B ") == "Qwen/Qwen3-ASR-0.6B"
    home = os.path.expanduser("~")
    with pytest.raises(ModelNotFoundError, match=home):
        resolve_model_path("~/no-such-model-dir-xyz")


def test_backend_choice() -> None:
    with pytest.raises(ValueError, match="unknown backend"):
        choose_backend("tensorrt")
    assert choose_backend("transformers") == "transformers"
    assert choose_backend("auto", device="cpu") == "transformers"


def test_vllm_backend_without_vllm_is_a_clear_error(monkeypatch: pytest.MonkeyPatch) -> None:
    import server.engine.qwen as qwen

    monkeypatch.setattr(qwen, "_vllm_installed", lambda: False)
    with pytest.raises(ModelLoadError, match="vllm is not installed"):
        choose_backend("vllm")
    assert choose_backend("auto") == "transformers"


def test_kv_cache_errors_say_which_setting_to_change() -> None:
    exc = ValueError(
        "To serve at least one request with the models's max seq len (65536), "
        "(7.00 GiB KV cache is needed, which is larger than the available KV cache memory"
    )
    assert is_memory_error(exc)
    assert not is_memory_error(ValueError("bad config key"))
    msg = kv_cache_message(exc, model="/m", max_model_len=8192, gpu_memory_utilization=0.5)
    assert "--max-model-len" in msg and "--gpu-memory-utilization" in msg and "8192" in msg
    assert issubclass(KVCacheError, ModelLoadError)


def test_engine_core_root_cause_is_found_in_its_stderr() -> None:
    from server.engine.qwen.vllm_generator import _root_cause

    tail = (
        "(EngineCore_DP0 pid=7) ERROR 11-23 [core.py:936] EngineCore failed to start.\n"
        "(EngineCore_DP0 pid=7) ERROR 11-23 [core.py:936] ValueError: To serve at least one "
        "request with the models's max seq len (65536), (7.0 GiB KV cache is needed)\n"
        "RuntimeError: Engine core initialization failed. See root cause above.\n"
    )
    cause = _root_cause(tail)
    assert cause.startswith("ValueError: To serve at least one request")
    assert is_memory_error(RuntimeError(cause))
    assert _root_cause("nothing useful\n") == ""
