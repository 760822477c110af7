"""User settings: a plain dataclass with defaults (pure), persisted with QSettings.

Every setting has a default, so a missing or damaged value never stops the app: it
falls back to the default and the problem is logged. ``SCHEMA_VERSION`` is stored with
the settings; :func:`migrate` upgrades older layouts.

Settings carry typed values: ``mode`` is a :class:`~desktop.audio.segmenter.Mode`,
``output_method`` (and each ``app_overrides`` value) an
:class:`~desktop.output.base.OutputMethod`, ``overlay_position`` an
:class:`OverlayPosition`, ``launcher`` a :class:`Launcher`. Text
exists only at the store boundary (:func:`setting_text` writes it, :func:`_coerce` reads
it), in the spelling the settings file has always used, so old files keep loading. Each
knob has one default: the VAD knobs' come from
:class:`~desktop.audio.segmenter.SegmenterConfig`, the talk key's from
:mod:`desktop.hotkey.keys`.
"""

from __future__ import annotations

import dataclasses
import enum
import json
import logging
import os
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any, TypeVar

from desktop.audio.segmenter import Mode, SegmenterConfig
from desktop.hotkey.keys import DEFAULT_HOLD_KEY, KeySpecError, normalize_key_spec
from desktop.output.base import OutputMethod
from protocol.endpoint import DEFAULT_SERVER_URL

log = logging.getLogger(__name__)

SCHEMA_VERSION = 1


class Launcher(enum.Enum):
    """Where the server command runs (the ``launcher`` setting)."""

    WSL = "wsl"  # inside WSL 2, through wsl.exe (the server on Windows' GPU)
    DIRECT = "direct"  # as a child process of the app, on this machine


class OverlayPosition(enum.Enum):
    """Where the live-text overlay sits on the screen the mouse is on."""

    BOTTOM = "bottom"  # centred above the bottom edge
    TOP = "top"  # centred below the top edge
    CURSOR = "cursor"  # just below the mouse pointer


#: How each output method is written in the settings file and offered in the dialog.
OUTPUT_METHOD_TEXT = {
    OutputMethod.AUTO: "auto",
    OutputMethod.KEYSTROKES: "keystrokes",
    OutputMethod.CLIPBOARD_PASTE: "clipboard",
}
MODES = tuple(mode.value for mode in Mode)
OUTPUT_METHODS = tuple(OUTPUT_METHOD_TEXT.values())
OVERLAY_POSITIONS = tuple(position.value for position in OverlayPosition)
LAUNCHERS = tuple(launcher.value for launcher in Launcher)

_SEGMENTER = SegmenterConfig()  # the VAD knobs' defaults live there


def setting_text(value: enum.Enum) -> str:
    """The stored (and shown) spelling of an enum-valued setting."""
    if isinstance(value, OutputMethod):
        return OUTPUT_METHOD_TEXT[value]
    return str(value.value)


_Choice = TypeVar("_Choice", bound=enum.Enum)


def parse_choice(kind: type[_Choice], value: _Choice | str) -> _Choice:
    """An enum-valued setting from its stored spelling (case-insensitive); a spelling
    that names no member raises ValueError."""
    return value if isinstance(value, kind) else kind(str(value).strip().lower())


def parse_mode(value: Mode | str) -> Mode:
    return parse_choice(Mode, value)


def parse_output_method(value: OutputMethod | str) -> OutputMethod:
    return value if isinstance(value, OutputMethod) else OutputMethod.parse(str(value))


@dataclass(frozen=True)
class Settings:
    # server
    server_url: str = DEFAULT_SERVER_URL
    token: str = ""
    ca_file: str = ""  # wss://: CA or self-signed certificate to trust; "" = the system's
    server_configured: bool = False  # False: the first-run setup opens at start
    # audio
    microphone: str = ""  # name substring or index; "" = system default
    # keep the microphone open between talk-key presses (pre-roll from before the press);
    # off: it opens only while dictating (Bluetooth headsets keep their good profile and
    # Windows' mic-in-use icon goes out)
    warm_mic: bool = False
    language: str = ""  # "" = detect
    context: str = ""  # hotwords / domain text
    # float(): the store reads a stored value back as its default's type
    vad_threshold: float = float(_SEGMENTER.threshold)
    min_silence_ms: float = float(_SEGMENTER.min_silence_ms)
    pre_roll_ms: float = float(_SEGMENTER.pre_roll_ms)
    tail_ms: float = float(_SEGMENTER.tail_ms)
    release_tail_ms: float = float(_SEGMENTER.release_tail_ms)
    # dictation
    mode: Mode = Mode.PUSH_TO_TALK
    hold_key: str = DEFAULT_HOLD_KEY  # why right Ctrl: desktop/hotkey/keys.py
    toggle_key: str = ""  # "" = none
    output_method: OutputMethod = OutputMethod.AUTO
    app_overrides: dict[str, OutputMethod] = field(default_factory=dict)  # app name → method
    sound_cues: bool = False  # a short tone when recording starts and stops
    # overlay
    overlay_position: OverlayPosition = OverlayPosition.BOTTOM
    show_latency: bool = False
    # debugging
    log_transcripts: bool = False  # let what was said into the log (never by default)
    # desktop
    start_at_login: bool = False  # Windows: the HKCU Run value (desktop/win32/login.py)
    # server launcher
    start_server_on_launch: bool = False
    launcher: Launcher = Launcher.WSL
    wsl_distro: str = ""  # "" = default distro
    server_command: str = "tingxie-server --model Qwen/Qwen3-ASR-1.7B"

    def __post_init__(self) -> None:
        # The dialog and older callers hand over the stored spelling ("hands_free",
        # "clipboard"): the dataclass keeps the enum. A spelling that names no value
        # raises ValueError.
        object.__setattr__(self, "mode", parse_mode(self.mode))
        object.__setattr__(self, "output_method", parse_output_method(self.output_method))
        position = parse_choice(OverlayPosition, self.overlay_position)
        object.__setattr__(self, "overlay_position", position)
        object.__setattr__(self, "launcher", parse_choice(Launcher, self.launcher))
        overrides = {str(k): parse_output_method(v) for k, v in self.app_overrides.items()}
        object.__setattr__(self, "app_overrides", overrides)

    def validated(self) -> Settings:
        """A copy with out-of-range values replaced by defaults (logged)."""
        defaults = Settings()
        fixes: dict[str, Any] = {}
        if not 0.0 < self.vad_threshold <= 1.0:
            fixes["vad_threshold"] = defaults.vad_threshold
        for name in ("min_silence_ms", "pre_roll_ms", "tail_ms", "release_tail_ms"):
            value = getattr(self, name)
            if not 0.0 <= value <= 10_000.0 or (name == "min_silence_ms" and value == 0):
                fixes[name] = getattr(defaults, name)
        if not self.server_url.startswith(("ws://", "wss://")):
            fixes["server_url"] = defaults.server_url
        for name in ("hold_key", "toggle_key"):
            value = getattr(self, name)
            if value or name == "hold_key":
                try:
                    normalize_key_spec(value)
                except KeySpecError:
                    fixes[name] = getattr(defaults, name)
        if fixes:
            log.warning("settings out of range, using defaults for: %s", ", ".join(fixes))
        return dataclasses.replace(self, **fixes)


def with_changes(current: Settings, before: Settings, after: Settings) -> Settings:
    """``current`` with what changed from ``before`` to ``after``: a dialog that worked on
    a copy (``before``) keeps changes made elsewhere meanwhile."""
    changes = {
        f.name: getattr(after, f.name)
        for f in fields(Settings)
        if getattr(after, f.name) != getattr(before, f.name)
    }
    return dataclasses.replace(current, **changes)


def _coerce(value: Any, default: Any) -> Any:
    """QSettings (INI/registry) stores strings; convert back to the default's type."""
    if isinstance(default, OutputMethod):
        return parse_output_method(str(value))
    if isinstance(default, enum.Enum):  # Mode, OverlayPosition, Launcher
        return parse_choice(type(default), str(value))
    if isinstance(default, bool):
        if isinstance(value, bool):
            return value
        text = str(value).strip().lower()
        if text in {"true", "1", "yes"}:
            return True
        if text in {"false", "0", "no"}:
            return False
        raise ValueError(f"not a boolean: {value!r}")
    if isinstance(default, float):
        return float(value)
    if isinstance(default, dict):
        parsed = json.loads(value) if isinstance(value, str) else value
        if not isinstance(parsed, dict):
            raise ValueError("not an object")
        return _app_overrides(parsed)
    return str(value)


def _app_overrides(parsed: dict[Any, Any]) -> dict[str, OutputMethod]:
    """Per-application output methods; an entry naming no method is left out (logged)."""
    overrides: dict[str, OutputMethod] = {}
    for app, method in parsed.items():
        try:
            overrides[str(app)] = parse_output_method(str(method))
        except ValueError:
            log.warning("app_overrides: %r is not an output method; ignored for %s", method, app)
    return overrides


def _stored(value: Any) -> Any:
    """A setting's value as QSettings stores it (text for enums, JSON for the dict)."""
    if isinstance(value, enum.Enum):
        return setting_text(value)
    if isinstance(value, dict):
        return json.dumps({k: setting_text(v) for k, v in value.items()})
    return value


def migrate(values: dict[str, Any], version: int) -> dict[str, Any]:
    """Upgrade stored values from an older schema (none yet: v1 is the first)."""
    if version > SCHEMA_VERSION:
        log.warning(
            "settings were written by a newer tingxie (schema %d); unknown keys are ignored",
            version,
        )
    return values


def settings_directory(settings_file: Path, chosen: Path | None) -> Path | None:
    """The folder that belongs to tingxie alone (so it may be made private), if any.

    ``--settings-dir`` is ours; so is ``~/.config/tingxie``. A shared folder such as
    macOS's ``~/Library/Preferences`` is not. On Windows the settings live in the
    user's own registry hive (HKEY_CURRENT_USER), which other users cannot read.
    """
    if chosen is not None:
        return chosen
    parent = settings_file.parent
    return parent if parent.name == "tingxie" else None


def restrict_to_user(path: Path, mode: int) -> None:
    """chmod on POSIX (the settings hold the server token); nothing on Windows."""
    if os.name == "nt" or not path.exists():
        return
    try:
        os.chmod(path, mode)
    except OSError as exc:
        log.warning("cannot restrict %s to its owner: %s", path, exc)


class SettingsStore:
    """Loads and saves :class:`Settings` with QSettings.

    With ``directory`` (the app's ``--settings-dir``) settings live in an INI file there;
    otherwise in the platform's place (registry on Windows, ~/.config on Linux).
    """

    def __init__(self, directory: Path | None = None) -> None:
        from PySide6.QtCore import QSettings

        if directory is not None:
            directory.mkdir(parents=True, exist_ok=True)
            self._qs = QSettings(str(directory / "tingxie.ini"), QSettings.Format.IniFormat)
        else:
            self._qs = QSettings("tingxie", "tingxie")
        self._own_directory = settings_directory(Path(self.location), directory)

    @property
    def location(self) -> str:
        return str(self._qs.fileName())

    def load(self) -> Settings:
        qs = self._qs
        try:
            version = int(str(qs.value("schema_version", SCHEMA_VERSION)))
        except ValueError:
            version = SCHEMA_VERSION
        stored = {key: qs.value(key) for key in qs.allKeys()}
        stored = migrate(stored, version)
        if "server_configured" not in stored and "server_url" in stored:
            # Settings saved before the first-run setup existed, or written by hand:
            # whoever stored a server URL has chosen a server.
            stored["server_configured"] = True
        defaults = Settings()
        values: dict[str, Any] = {}
        for f in fields(Settings):
            if f.name not in stored or stored[f.name] is None:
                continue
            default = getattr(defaults, f.name)
            try:
                values[f.name] = _coerce(stored[f.name], default)
            except (TypeError, ValueError) as exc:
                log.warning(
                    "setting %s=%r is invalid (%s); using the default", f.name, stored[f.name], exc
                )
        return Settings(**values).validated()

    def save(self, settings: Settings) -> None:
        qs = self._qs
        qs.setValue("schema_version", SCHEMA_VERSION)
        for f in fields(Settings):
            qs.setValue(f.name, _stored(getattr(settings, f.name)))
        if self._own_directory is not None:
            restrict_to_user(self._own_directory, 0o700)  # before the file is written
        qs.sync()
        restrict_to_user(Path(self.location), 0o600)  # sync() replaces the file: every time
