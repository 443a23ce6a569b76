"""What every command prints: tables that never cut a figure, JSON for machines, progress
bars and log lines that suit where the output goes.

Tables are plain text so a log, a pipe and a terminal all show the same whole numbers.
A table wider than the page is laid out again rather than truncated: headers wrap at
spaces, then the columns are split into panels that repeat the row's key columns, and
when not even that fits each row is printed as a block of `header: value` lines.
"""

from __future__ import annotations

import json
import logging
import math
import os
import shutil
import sys
import textwrap
import time
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from datetime import date, datetime
from pathlib import Path
from typing import IO, Any, Literal, TypeVar

from rich.console import Console

MIN_WIDTH = 120
PAGE_WIDTH = 100  # the width of a log or a pipe: the tables must fit it
GAP = "  "
MISSING = "-"
T = TypeVar("T")


def console(stderr: bool = False) -> Console:
    """A rich console for sentences and rules (never for tables: see `print_table`)."""
    return Console(width=max(Console().width, MIN_WIDTH), stderr=stderr)


@dataclass(frozen=True)
class Column:
    """One column of a table: its name, the unit its figures are in, how they align."""

    name: str
    unit: str | None = None
    align: Literal["left", "right"] = "right"

    @property
    def header(self) -> str:
        return f"{self.name} ({self.unit})" if self.unit else self.name


def page_width() -> int:
    """$COLUMNS, else the terminal's width, else 100 columns (a pipe or a log file)."""
    return max(20, shutil.get_terminal_size((PAGE_WIDTH, 24)).columns)


def cell_text(value: object) -> str:
    """How a cell reads: None and NaN as '-', everything else as given (callers format
    numbers with their own precision)."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return MISSING
    return str(value)


def render_table(columns: Sequence[Column | str], rows: Iterable[Sequence[object]], *,
                 title: str | None = None, caption: str | None = None, width: int | None = None,
                 keys: int = 1) -> str:
    """The table as text no wider than `width` (default `page_width()`), every cell whole.

    `keys` leading columns identify a row (symbol, strategy…); they are repeated in each
    panel when the columns must be split to fit.
    """
    cols = [c if isinstance(c, Column) else Column(c, align="left") for c in columns]
    cells = [[cell_text(v) for v in row] for row in rows]
    for row in cells:
        if len(row) != len(cols):
            raise ValueError(f"a row has {len(row)} cells for {len(cols)} columns")
    width = width or page_width()
    keys = min(max(keys, 0), len(cols))
    lines = _wrapped(title, width)
    panels = _panels(cols, cells, width, keys)
    if panels is None:
        lines += _vertical(cols, cells)
    else:
        for n, indices in enumerate(panels):
            if n:
                lines.append("")
            lines += _horizontal([cols[i] for i in indices], [[r[i] for i in indices] for r in cells],
                                 width)
    lines += _wrapped(caption, width)
    return "\n".join(lines)


def print_table(columns: Sequence[Column | str], rows: Iterable[Sequence[object]], *,
                title: str | None = None, caption: str | None = None, keys: int = 1,
                file: IO[str] | None = None) -> None:
    """Print `render_table(...)` to stdout (or `file`), followed by a blank line."""
    out = file or sys.stdout
    out.write(render_table(columns, rows, title=title, caption=caption, keys=keys) + "\n\n")
    out.flush()


def _wrapped(text: str | None, width: int) -> list[str]:
    if not text:
        return []
    return textwrap.wrap(text, width, break_long_words=False, break_on_hyphens=False) or [""]


def _column_widths(cols: Sequence[Column], cells: list[list[str]]) -> list[int]:
    """Each column as wide as its widest cell and its longest header word."""
    widths = []
    for i, col in enumerate(cols):
        longest_word = max((len(w) for w in col.header.split()), default=0)
        widths.append(max([longest_word, *(len(r[i]) for r in cells)]))
    return widths


def _span(widths: Sequence[int]) -> int:
    return sum(widths) + len(GAP) * max(len(widths) - 1, 0)


def _panels(cols: Sequence[Column], cells: list[list[str]], width: int,
            keys: int) -> list[list[int]] | None:
    """Column indices per panel, each panel within `width`; None when none can fit."""
    widths = _column_widths(cols, cells)
    if _span(widths) <= width:
        return [list(range(len(cols)))]
    key_span = _span(widths[:keys]) + (len(GAP) if keys else 0)
    panels: list[list[int]] = []
    current: list[int] = []
    used = key_span
    for i in range(keys, len(cols)):
        need = widths[i] + (len(GAP) if current else 0)
        if key_span + widths[i] > width:
            return None  # one column next to the keys is already too wide: go vertical
        if current and used + need > width:
            panels.append(current)
            current, used = [], key_span
            need = widths[i]
        current.append(i)
        used += need
    if current:
        panels.append(current)
    if not panels:  # only key columns, together wider than the page: nothing to split
        return None
    return [[*range(keys), *panel] for panel in panels]


def _horizontal(cols: Sequence[Column], cells: list[list[str]], width: int) -> list[str]:
    widths = _column_widths(cols, cells)
    # Spare room unwraps headers, the nearest to fitting on one line first.
    spare = width - _span(widths)
    for i in sorted(range(len(cols)), key=lambda i: len(cols[i].header) - widths[i]):
        deficit = len(cols[i].header) - widths[i]
        if 0 < deficit <= spare:
            widths[i] += deficit
            spare -= deficit
    header_lines = [textwrap.wrap(c.header, w, break_long_words=False) or [""]
                    for c, w in zip(cols, widths, strict=True)]
    depth = max(len(h) for h in header_lines)
    lines = []
    for k in range(depth):
        # headers sit on the bottom line, next to the figures they name
        parts = [_aligned(h[k - depth + len(h)] if k >= depth - len(h) else "", w, c.align)
                 for h, w, c in zip(header_lines, widths, cols, strict=True)]
        lines.append(GAP.join(parts).rstrip())
    lines.append(GAP.join("─" * w for w in widths))
    for row in cells:
        lines.append(GAP.join(_aligned(v, w, c.align)
                              for v, w, c in zip(row, widths, cols, strict=True)).rstrip())
    return lines


def _aligned(text: str, width: int, align: str) -> str:
    return text.rjust(width) if align == "right" else text.ljust(width)


def _vertical(cols: Sequence[Column], cells: list[list[str]]) -> list[str]:
    """One block per row, `header: value` per line; values are never cut."""
    label = max(len(c.header) for c in cols)
    lines: list[str] = []
    for n, row in enumerate(cells):
        if n:
            lines.append("")
        lines += [f"{c.header.ljust(label)}  {v}" for c, v in zip(cols, row, strict=True)]
    return lines


def json_ready(value: Any) -> Any:
    """Plain JSON values: NaN and infinities become null, paths and dates strings,
    NumPy scalars Python numbers, tuples lists."""
    if isinstance(value, dict):
        return {str(k): json_ready(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [json_ready(v) for v in value]
    if isinstance(value, bool) or value is None or isinstance(value, str | int):
        return value
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, Path):
        return str(value)
    if isinstance(value, datetime | date):
        return value.isoformat()
    if hasattr(value, "item"):  # NumPy scalars
        return json_ready(value.item())
    return str(value)


def print_json(payload: Any, file: IO[str] | None = None) -> None:
    """One JSON document on stdout: what `--json` prints (keys documented per command)."""
    out = file or sys.stdout
    out.write(json.dumps(json_ready(payload), indent=2) + "\n")
    out.flush()


def interactive(stream: IO[str] | None = None) -> bool:
    """A person is watching this stream (a terminal), so bars and colours make sense."""
    stream = stream or sys.stderr
    try:
        return stream.isatty() and os.environ.get("TERM") != "dumb"
    except (AttributeError, ValueError):
        return False


def progress(items: Iterable[T], description: str, total: int | None = None,
             unit: str = "") -> Iterator[T]:
    """Iterate with a rich progress bar on stderr when it is a terminal; silent otherwise,
    so logs never fill with carriage-return redraws."""
    if not interactive():
        yield from items
        return
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    if total is None and hasattr(items, "__len__"):
        total = len(items)  # type: ignore[arg-type]
    columns = (TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
               TextColumn(unit), TimeElapsedColumn())
    with Progress(*columns, console=Console(stderr=True), transient=True) as bar:
        task = bar.add_task(description, total=total)
        for item in items:
            yield item
            bar.advance(task)


class JsonLineFormatter(logging.Formatter):
    """One JSON object per line: time, level, logger, event, and the event's fields (the
    `extra={"fields": {...}}` of the call)."""

    def format(self, record: logging.LogRecord) -> str:
        obj: dict[str, Any] = {
            "ts": time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created))
            + f".{int(record.msecs):03d}Z",
            "level": record.levelname.lower(), "logger": record.name,
            "event": record.getMessage()}
        fields = getattr(record, "fields", None)
        if fields:
            obj.update(fields)
        if record.exc_info:
            obj["exception"] = self.formatException(record.exc_info)
        return json.dumps(obj, default=str)


class TextLineFormatter(logging.Formatter):
    """`HH:MM:SS level    event  key=value ...`, for a person at a terminal."""

    def format(self, record: logging.LogRecord) -> str:
        stamp = time.strftime("%H:%M:%S", time.localtime(record.created))
        line = f"{stamp} {record.levelname.lower():<8} {record.getMessage()}"
        fields = getattr(record, "fields", None)
        if fields:
            line += "  " + " ".join(f"{k}={_field_text(v)}" for k, v in fields.items())
        if record.exc_info:
            line += "\n" + self.formatException(record.exc_info)
        return line


def _field_text(value: Any) -> str:
    text = value if isinstance(value, str) else json.dumps(value, default=str)
    return f'"{text}"' if " " in text and isinstance(value, str) else text


def setup_logging(verbose: bool = False, json_logs: bool | None = None,
                  bookcast_level: int | None = None) -> None:
    """Log lines on stderr: readable text at a terminal, one JSON object per line when
    asked (`json_logs=True`) or when stderr is not a terminal (journald, a log file).
    Other libraries log warnings only; bookcast's own loggers log at `bookcast_level`
    (default: INFO with `verbose`, else warnings)."""
    as_json = (not interactive(sys.stderr)) if json_logs is None else json_logs
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(JsonLineFormatter() if as_json else TextLineFormatter())
    root = logging.getLogger()
    for old in list(root.handlers):
        root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(logging.WARNING)
    logging.getLogger("bookcast").setLevel(
        bookcast_level if bookcast_level is not None
        else logging.INFO if verbose else logging.WARNING)
