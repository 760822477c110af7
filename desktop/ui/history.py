"""Recent utterances: time, text, latency; copy or type again.

The text column shows each final as the text sink lets it through (what was typed, no
controls, no bidi overrides, line breaks as spaces), so Copy puts only visible text on
the clipboard too.
"""

from __future__ import annotations

import datetime
from collections.abc import Callable

from PySide6.QtGui import QGuiApplication
from PySide6.QtWidgets import (
    QAbstractItemView,
    QHBoxLayout,
    QHeaderView,
    QPushButton,
    QTableWidget,
    QTableWidgetItem,
    QVBoxLayout,
    QWidget,
)

from desktop.coordinator import HistoryEntry
from desktop.output.text_sink import sanitize


class HistoryWindow(QWidget):
    def __init__(self, retype: Callable[[str], None]) -> None:
        super().__init__()
        self.setWindowTitle("tingxie history")
        self.resize(640, 360)
        self._retype = retype
        self.table = QTableWidget(0, 3)
        self.table.setHorizontalHeaderLabels(["Time", "Text", "Latency"])
        self.table.setSelectionBehavior(QAbstractItemView.SelectionBehavior.SelectRows)
        self.table.setEditTriggers(QAbstractItemView.EditTrigger.NoEditTriggers)
        header = self.table.horizontalHeader()
        header.setSectionResizeMode(1, QHeaderView.ResizeMode.Stretch)
        self.copy_button = QPushButton("Copy")
        self.copy_button.clicked.connect(self.copy_selected)
        self.retype_button = QPushButton("Type again")
        self.retype_button.setToolTip("Types the text into the window that had focus before")
        self.retype_button.clicked.connect(self.retype_selected)
        buttons = QHBoxLayout()
        buttons.addStretch()
        buttons.addWidget(self.copy_button)
        buttons.addWidget(self.retype_button)
        layout = QVBoxLayout(self)
        layout.addWidget(self.table)
        layout.addLayout(buttons)

    def set_entries(self, entries: list[HistoryEntry]) -> None:
        self.table.setRowCount(0)
        for entry in entries:
            self.add(entry)

    def add(self, entry: HistoryEntry) -> None:
        row = 0  # newest first
        self.table.insertRow(row)
        when = datetime.datetime.fromtimestamp(entry.when).strftime("%H:%M:%S")
        latency = f"{entry.latency_ms:.0f} ms" if entry.latency_ms is not None else "—"
        if not entry.typed:
            latency += " (not typed)"
        text = sanitize(entry.text, max_chars=None).text
        for column, value in enumerate((when, text, latency)):
            item = QTableWidgetItem(value)
            if entry.note:  # why it was not typed (late, locked...), or what was changed
                item.setToolTip(entry.note)
            self.table.setItem(row, column, item)

    def selected_text(self) -> str:
        row = self.table.currentRow()
        item = self.table.item(row, 1) if row >= 0 else None
        return item.text() if item is not None else ""

    def copy_selected(self) -> None:
        if text := self.selected_text():
            QGuiApplication.clipboard().setText(text)

    def retype_selected(self) -> None:
        if text := self.selected_text():
            self.hide()  # give focus back to the window to type into
            self._retype(text)
