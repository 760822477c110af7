"""The one seam between tingxie and Win32.

Every ctypes prototype the app uses is declared once, in :mod:`desktop.win32.api`, and only
on Windows. Everything above it takes an object with the methods it needs (a Protocol) so
that tests can pass a recording fake; docs/windows.md cites the API facts relied on.
"""
