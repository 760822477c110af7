"""Tray and app icons: every state, size and taskbar variant exists, is distinct, stands
out from its taskbar, sits on the pixel grid, and matches the script that draws it."""

from __future__ import annotations

import importlib.util
import itertools
import sys
from pathlib import Path
from types import ModuleType

import numpy as np
import pytest
from PySide6.QtGui import QImage

from desktop.coordinator import Stage
from desktop.launcher import LauncherState
from desktop.resources import resource_path
from desktop.streaming import ClientState
from desktop.ui.icons import (
    TRAY_SIZES,
    TRAY_STATES,
    TaskbarTheme,
    app_icon,
    choose_taskbar_theme,
    tray_icon,
    tray_icon_file,
)
from desktop.ui.look import tray_look
from desktop.ui.tray import Tray

ROOT = Path(__file__).parents[2]
TASKBARS = {TaskbarTheme.LIGHT: (0xF3, 0xF3, 0xF3), TaskbarTheme.DARK: (0x20, 0x20, 0x20)}
VARIANTS = list(itertools.product(TRAY_STATES, TaskbarTheme, TRAY_SIZES))


def rgba(image: QImage) -> np.ndarray:
    image = image.convertToFormat(QImage.Format.Format_RGBA8888)
    raw = np.frombuffer(image.constBits(), np.uint8)
    return raw.reshape(image.height(), image.bytesPerLine() // 4, 4)[:, : image.width()].copy()


def tray_pixels(state: str, theme: TaskbarTheme, size: int) -> np.ndarray:
    image = QImage(str(resource_path("icons", "tray", tray_icon_file(state, theme, size))))
    assert not image.isNull()
    return rgba(image)


def luminance(rgb: np.ndarray) -> np.ndarray:
    c = np.asarray(rgb, dtype=float) / 255
    c = np.where(c <= 0.03928, c / 12.92, ((c + 0.055) / 1.055) ** 2.4)
    return np.asarray(c @ [0.2126, 0.7152, 0.0722])


def share_standing_out(pixels: np.ndarray, taskbar: tuple[int, int, int]) -> float:
    """Share of the icon's solid pixels with WCAG contrast ≥ 3:1 against the taskbar."""
    solid = pixels[..., 3] == 255
    ink, bar = luminance(pixels[..., :3][solid]), luminance(np.array(taskbar))
    contrast = (np.maximum(ink, bar) + 0.05) / (np.minimum(ink, bar) + 0.05)
    return float((contrast >= 3.0).mean())


def test_every_look_the_tray_can_show_has_an_icon() -> None:
    keys = {
        tray_look(server, stage, launcher).key
        for server in ClientState
        for stage in Stage
        for launcher in (None, *LauncherState)
    }
    assert keys == set(TRAY_STATES)


@pytest.mark.parametrize(("state", "theme", "size"), VARIANTS)
def test_each_variant_is_a_square_png_with_transparency(
    state: str, theme: TaskbarTheme, size: int
) -> None:
    pixels = tray_pixels(state, theme, size)
    assert pixels.shape == (size, size, 4)
    alpha = pixels[..., 3]
    assert (alpha == 0).any(), "corners stay transparent"
    assert (alpha == 255).mean() > 0.1, "the drawing is not faint"
    assert share_standing_out(pixels, TASKBARS[theme]) >= 0.6


@pytest.mark.parametrize("state", ["offline", "ready", "listening"])
def test_the_wrong_variant_would_vanish_on_the_taskbar(state: str) -> None:
    """Why two variants: a glyph meant for a light taskbar disappears on a dark one."""
    for theme, other in (
        (TaskbarTheme.LIGHT, TaskbarTheme.DARK),
        (TaskbarTheme.DARK, TaskbarTheme.LIGHT),
    ):
        assert share_standing_out(tray_pixels(state, theme, 16), TASKBARS[other]) < 0.2


@pytest.mark.parametrize(("theme", "size"), list(itertools.product(TaskbarTheme, TRAY_SIZES)))
def test_states_look_different(theme: TaskbarTheme, size: int) -> None:
    images = {state: tray_pixels(state, theme, size).astype(int) for state in TRAY_STATES}
    for a, b in itertools.combinations(TRAY_STATES, 2):
        differing = (np.abs(images[a] - images[b]).max(axis=-1) > 64).mean()
        assert differing > 0.08, f"{a} and {b} at {size} px differ in {differing:.0%} of pixels"


def test_tray_icons_carry_every_size_and_the_app_icon_16_to_256(qapp) -> None:  # type: ignore[no-untyped-def]
    for state, theme in itertools.product(TRAY_STATES, TaskbarTheme):
        sizes = sorted(s.width() for s in tray_icon(state, theme).availableSizes())
        assert sizes == list(TRAY_SIZES)
    assert sorted(s.width() for s in app_icon().availableSizes()) == [
        16,
        20,
        24,
        32,
        40,
        48,
        64,
        128,
        256,
    ]
    with pytest.raises(ValueError, match="no tray icon"):
        tray_icon("sleeping", TaskbarTheme.DARK)


def test_taskbar_theme_choice() -> None:
    # Windows: the taskbar follows the Windows mode, whatever the app mode says
    assert choose_taskbar_theme(False, "light", 255) is TaskbarTheme.DARK
    assert choose_taskbar_theme(True, "dark", 0) is TaskbarTheme.LIGHT
    # elsewhere: the colour scheme, else the palette
    assert choose_taskbar_theme(None, "dark", 255) is TaskbarTheme.DARK
    assert choose_taskbar_theme(None, "light", 0) is TaskbarTheme.LIGHT
    assert choose_taskbar_theme(None, "unknown", 40) is TaskbarTheme.DARK
    assert choose_taskbar_theme(None, "unknown", 230) is TaskbarTheme.LIGHT


def test_tray_shows_the_state_icon(qtbot) -> None:  # type: ignore[no-untyped-def]
    tray = Tray(force_fallback=True)
    assert tray.window is not None
    qtbot.addWidget(tray.window)
    for stage, key in ((Stage.SPEAKING, "speaking"), (Stage.IDLE, "ready")):
        tray.set_look(tray_look(ClientState.READY, stage))
        shown = rgba(tray.window.windowIcon().pixmap(16, 16).toImage())
        expected = [tray_pixels(key, theme, 16) for theme in TaskbarTheme]
        assert any(np.array_equal(shown, e) for e in expected), key


# ---------------------------------------------------------------- the drawing script


def load_make_icons() -> ModuleType:
    path = ROOT / "resources" / "source" / "make_icons.py"
    spec = importlib.util.spec_from_file_location("make_icons", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules["make_icons"] = module
    spec.loader.exec_module(module)
    return module


def test_committed_icons_are_what_the_script_draws(qapp, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    make_icons = load_make_icons()
    assert tuple(make_icons.STATES) == TRAY_STATES and tuple(make_icons.TRAY_SIZES) == TRAY_SIZES
    written = make_icons.write_icons(tmp_path)
    assert len(written) == len(VARIANTS) + 2
    for path in written:
        committed = resource_path("icons", *path.relative_to(tmp_path).parts)
        if path.suffix == ".ico":
            assert path.read_bytes()[:6] == committed.read_bytes()[:6]
            continue
        drawn, stored = rgba(QImage(str(path))), rgba(QImage(str(committed)))
        # a Qt release may anti-alias a little differently: allow a shade, not a change
        diff = np.abs(drawn.astype(int) - stored.astype(int)).max()
        assert diff <= 8, f"{committed.name}: re-run resources/source/make_icons.py"


def test_small_glyphs_sit_on_the_pixel_grid(qapp) -> None:  # type: ignore[no-untyped-def]
    """Straight strokes on whole pixels leave fewer half-covered pixels than the same
    drawing moved half a pixel: the blur that a scaled-down icon would have."""
    make_icons = load_make_icons()

    def half_covered(image: QImage) -> float:
        alpha = rgba(image)[..., 3]
        return float(((alpha > 0) & (alpha < 255)).sum() / (alpha > 0).sum())

    for size in TRAY_SIZES:
        aligned = half_covered(make_icons.tray_image("ready", "light", size))
        shifted = half_covered(make_icons.tray_image("ready", "light", size, shift=0.5))
        assert aligned < 0.85 * shifted, (size, aligned, shifted)
