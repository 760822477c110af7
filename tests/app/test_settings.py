"""Settings persist with QSettings, and damaged values fall back to defaults."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

from desktop.settings import SCHEMA_VERSION, Settings, SettingsStore


def test_round_trip(tmp_path: Path) -> None:
    store = SettingsStore(tmp_path)
    assert store.load() == Settings()  # nothing stored yet: defaults
    changed = replace(
        Settings(),
        server_url="ws://10.0.0.2:9000",
        token="t",
        ca_file="C:\\certs\\gpu box.pem",
        language="zh",
        context="通义千问",
        vad_threshold=0.6,
        mode="hands_free",
        show_latency=True,
        log_transcripts=True,
        app_overrides={"WindowsTerminal.exe": "clipboard"},
    )
    store.save(changed)
    assert SettingsStore(tmp_path).load() == changed
    assert f"schema_version={SCHEMA_VERSION}" in (tmp_path / "tingxie.ini").read_text()


def test_damaged_values_fall_back_to_defaults(tmp_path: Path) -> None:
    (tmp_path / "tingxie.ini").write_text(
        "[General]\nschema_version=1\nvad_threshold=loud\nmode=shouting\n"
        "show_latency=perhaps\nmin_silence_ms=-5\nserver_url=http://x\n"
        "app_overrides=not json\nlanguage=en\n"
    )
    loaded = SettingsStore(tmp_path).load()
    defaults = Settings()
    assert loaded.language == "en"
    assert loaded.vad_threshold == defaults.vad_threshold
    assert loaded.mode == defaults.mode
    assert loaded.show_latency == defaults.show_latency
    assert loaded.min_silence_ms == defaults.min_silence_ms
    assert loaded.server_url == defaults.server_url
    assert loaded.app_overrides == {}


def test_a_dialog_working_on_a_copy_keeps_changes_made_meanwhile() -> None:
    """The first-run setup works on the settings it was opened with; what the user changed
    in the Settings dialog while it ran stays, and only what the setup chose is applied."""
    from desktop.settings import with_changes

    opened_with = Settings()
    meanwhile = replace(opened_with, hold_key="f9", language="zh")
    chosen = replace(opened_with, server_url="ws://10.0.0.2:8765", server_configured=True)
    merged = with_changes(meanwhile, opened_with, chosen)
    assert merged == replace(meanwhile, server_url="ws://10.0.0.2:8765", server_configured=True)
