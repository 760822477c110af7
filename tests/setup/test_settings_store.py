"""The settings file holds the server token: only its owner may read it (POSIX)."""

from __future__ import annotations

import os
import stat
from dataclasses import replace
from pathlib import Path

import pytest

from desktop.settings import Settings, SettingsStore, settings_directory

pytestmark = pytest.mark.skipif(os.name == "nt", reason="POSIX permissions")


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def test_token_file_and_folder_are_private_after_every_save(tmp_path: Path) -> None:
    folder = tmp_path / "settings"
    old_umask = os.umask(0o022)  # the usual default: new files readable by everyone
    try:
        store = SettingsStore(folder)
        store.save(replace(Settings(), token="s3cret"))
        ini = folder / "tingxie.ini"
        assert "s3cret" in ini.read_text()
        assert mode(ini) == 0o600 and mode(folder) == 0o700
        # Someone (a backup tool, the user) loosens them; the next save tightens again,
        # also though QSettings writes a new file and renames it over the old one.
        ini.chmod(0o644)
        folder.chmod(0o755)
        store.save(replace(Settings(), token="other"))
        assert mode(ini) == 0o600 and mode(folder) == 0o700
        assert SettingsStore(folder).load().token == "other"
    finally:
        os.umask(old_umask)


def test_only_tingxie_folders_are_made_private() -> None:
    home = Path("/home/u")
    chosen = Path("/portable/tx")
    assert settings_directory(home / ".config/tingxie/tingxie.conf", chosen) == chosen
    assert settings_directory(home / ".config/tingxie/tingxie.conf", None) == (
        home / ".config/tingxie"
    )
    # macOS keeps every app's preferences in one shared folder: leave it alone.
    plist = home / "Library/Preferences/com.tingxie.tingxie.plist"
    assert settings_directory(plist, None) is None


def test_first_run_flag(tmp_path: Path) -> None:
    fresh = tmp_path / "fresh"
    assert SettingsStore(fresh).load().server_configured is False
    SettingsStore(fresh).save(replace(Settings(), server_configured=True))
    assert SettingsStore(fresh).load().server_configured is True
    # Settings written before the flag existed (or by hand) that name a server count as
    # configured: existing users never see the first-run setup.
    old = tmp_path / "old"
    old.mkdir()
    (old / "tingxie.ini").write_text("[General]\nschema_version=1\nserver_url=ws://10.0.0.5:9\n")
    assert SettingsStore(old).load().server_configured is True
    only_mode = tmp_path / "mode-only"
    only_mode.mkdir()
    (only_mode / "tingxie.ini").write_text("[General]\nmode=hands_free\n")
    assert SettingsStore(only_mode).load().server_configured is False
