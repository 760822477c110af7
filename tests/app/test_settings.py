"""Settings persist with QSettings, and damaged values fall back to defaults."""

from __future__ import annotations

import logging
from dataclasses import fields, replace
from pathlib import Path

import pytest

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


# ---------------------------------------------------------------- typed values


def test_settings_carry_enums_built_from_the_stored_spelling() -> None:
    from desktop.audio.segmenter import Mode
    from desktop.output.base import OutputMethod

    s = Settings(mode="toggle", output_method="clipboard", app_overrides={"a.exe": "keys"})
    assert s.mode is Mode.TOGGLE
    assert s.output_method is OutputMethod.CLIPBOARD_PASTE
    assert s.app_overrides == {"a.exe": OutputMethod.KEYSTROKES}
    assert Settings().mode is Mode.PUSH_TO_TALK and Settings().output_method is OutputMethod.AUTO


def test_a_file_written_before_typed_settings_loads_and_is_written_the_same_way(
    tmp_path: Path,
) -> None:
    from desktop.audio.segmenter import Mode
    from desktop.output.base import OutputMethod

    old_file = (
        "[General]\nschema_version=1\nmode=toggle\noutput_method=clipboard\n"
        'app_overrides="{\\"WindowsTerminal.exe\\": \\"clipboard\\", \\"x.exe\\": \\"fax\\"}"\n'
    )
    (tmp_path / "tingxie.ini").write_text(old_file)
    loaded = SettingsStore(tmp_path).load()
    assert loaded.mode is Mode.TOGGLE
    assert loaded.output_method is OutputMethod.CLIPBOARD_PASTE
    # an entry naming no method is left out, the others kept
    assert loaded.app_overrides == {"WindowsTerminal.exe": OutputMethod.CLIPBOARD_PASTE}
    SettingsStore(tmp_path).save(loaded)
    text = (tmp_path / "tingxie.ini").read_text()
    assert "mode=toggle" in text and "output_method=clipboard" in text
    assert "Mode." not in text and "OutputMethod" not in text
    assert SettingsStore(tmp_path).load() == loaded


def test_each_vad_knob_has_one_default() -> None:
    """The tray's VAD defaults are the segmenter's: an untouched Settings builds exactly
    the segmenter's default configuration."""
    from desktop.audio.segmenter import SegmenterConfig
    from desktop.coordinator import segmenter_config

    assert segmenter_config(Settings()) == SegmenterConfig()


def test_the_configuration_reference_shows_each_settings_default() -> None:
    """docs/configuration.md's default column says what Settings() holds."""
    import re

    from desktop.settings import setting_text

    doc = (Path(__file__).parents[2] / "docs" / "configuration.md").read_text(encoding="utf-8")
    rows = dict(re.findall(r"^\| `(\w+)` \| ([^|]*) \|", doc.split("### Settings")[1], re.M))
    defaults = Settings()
    assert set(rows) == {f.name for f in fields(Settings)}
    for name, documented in rows.items():
        value = getattr(defaults, name)
        documented = documented.strip()
        if isinstance(value, bool):
            assert documented in (("on", "true") if value else ("off", "false")), name
        elif value in ("", {}):
            assert "`" not in documented, f"{name}: documented as {documented}"
        elif isinstance(value, float):
            assert documented == f"`{value:g}`", name
        elif isinstance(value, str):
            assert documented == f"`{value}`", name
        else:
            assert documented == f"`{setting_text(value)}`", name


# ---------------------------------------------------------------- overlay position, launcher


def test_overlay_position_and_launcher_are_enums_stored_in_the_old_spelling(
    tmp_path: Path,
) -> None:
    from desktop.settings import Launcher, OverlayPosition

    assert Settings().overlay_position is OverlayPosition.BOTTOM
    assert Settings().launcher is Launcher.WSL
    # the spelling the dialog and the first-run setup hand over, any case
    s = Settings(overlay_position=" Cursor ", launcher="direct")  # type: ignore[arg-type]
    assert s.overlay_position is OverlayPosition.CURSOR and s.launcher is Launcher.DIRECT

    changed = replace(Settings(), overlay_position=OverlayPosition.TOP, launcher=Launcher.DIRECT)
    SettingsStore(tmp_path).save(changed)
    text = (tmp_path / "tingxie.ini").read_text()
    assert "overlay_position=top" in text and "launcher=direct" in text
    assert "OverlayPosition" not in text and "Launcher" not in text
    assert SettingsStore(tmp_path).load() == changed


def test_a_file_written_with_text_positions_and_launchers_loads(tmp_path: Path) -> None:
    from desktop.settings import Launcher, OverlayPosition

    for position in OverlayPosition:
        for launcher in Launcher:
            # a folder each: QSettings caches a file it has read within the same second
            folder = tmp_path / f"{position.value}-{launcher.value}"
            folder.mkdir()
            (folder / "tingxie.ini").write_text(
                f"[General]\nschema_version=1\noverlay_position={position.value}\n"
                f"launcher={launcher.value}\n"
            )
            loaded = SettingsStore(folder).load()
            assert (loaded.overlay_position, loaded.launcher) == (position, launcher)


def test_an_unknown_position_or_launcher_in_the_file_falls_back_with_a_warning(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    (tmp_path / "tingxie.ini").write_text(
        "[General]\nschema_version=1\noverlay_position=sideways\nlauncher=docker\nlanguage=zh\n"
    )
    with caplog.at_level(logging.WARNING, logger="desktop.settings"):
        loaded = SettingsStore(tmp_path).load()
    defaults = Settings()
    assert loaded.overlay_position is defaults.overlay_position
    assert loaded.launcher is defaults.launcher
    assert loaded.language == "zh"  # the rest of the file still counts
    warnings = "\n".join(r.getMessage() for r in caplog.records)
    assert "overlay_position='sideways' is invalid" in warnings
    assert "launcher='docker' is invalid" in warnings


def test_an_unknown_position_or_launcher_in_code_is_an_error() -> None:
    with pytest.raises(ValueError, match="sideways"):
        Settings(overlay_position="sideways")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="docker"):
        Settings(launcher="docker")  # type: ignore[arg-type]
