"""One console for every command's tables: as wide as the terminal, never narrower than
120 columns, so piped output and CI logs keep whole numbers instead of '…'."""

from __future__ import annotations

from rich.console import Console

MIN_WIDTH = 120


def console(stderr: bool = False) -> Console:
    return Console(width=max(Console().width, MIN_WIDTH), stderr=stderr)
