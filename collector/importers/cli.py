"""`bookcast import tardis|binance-depth`: other tools' history files -> the datasets."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from bookcast import interrupts, terminal
from bookcast.errors import UserError
from bookcast.terminal import Column
from bookcast.timeutil import parse_duration_ns, parse_time_ns

app = typer.Typer(help="Import history files from other tools into the snapshots and trades "
                       "datasets (the same rows, gap flags and files as replay).",
                  no_args_is_help=True)

DataDir = Annotated[Path | None, typer.Option("--data-dir", help="Data root (default "
                                               "$BOOKCAST_DATA_DIR or ./data).")]
Interval = Annotated[str, typer.Option(help="Snapshot grid on receive time, 10ms or more.")]
Depth = Annotated[str | None, typer.Option(help="Levels per side, or 'full' (default 100, or "
                                                "the levels a snapshot file holds).")]
From = Annotated[str | None, typer.Option("--from", help="First time to import (ISO date or "
                                                         "time, UTC).")]
To = Annotated[str | None, typer.Option("--to", help="Last time to import (ISO, UTC).")]
Quiet = Annotated[bool, typer.Option("--quiet", "-q", help="No progress bar.")]
Json = Annotated[bool, typer.Option("--json", help="Print the summary as one JSON document.")]
RotateRows = Annotated[int, typer.Option(help="Start a new Parquet file after this many "
                                              "rows.")]


def _depth(text: str | None) -> int | str | None:
    if text is None:
        return None
    from collector.cli import parse_depth

    levels = parse_depth(text)
    return "full" if levels is None else levels


def _rotate_rows(rows: int) -> int:
    if rows < 1:
        raise UserError(f"--rotate-rows {rows} must be at least 1.")
    return rows


def _window(start: str | None, end: str | None):  # type: ignore[no-untyped-def]
    from collector.importers.feed import TimeWindow

    return TimeWindow(None if start is None else parse_time_ns(start, what="--from time"),
                      None if end is None else parse_time_ns(end, what="--to time"))


@app.command("tardis")
def tardis(
    files: Annotated[list[Path], typer.Argument(help="tardis.dev CSV files (gzip, zstd or "
                                                     "plain): incremental_book_L2, "
                                                     "book_snapshot_N, quotes, trades.")],
    data_dir: DataDir = None,
    interval: Interval = "1s",
    depth: Depth = None,
    symbol: Annotated[list[str] | None, typer.Option(help="Only these symbols (required for a "
                                                          "file of several).")] = None,
    start: From = None,
    end: To = None,
    rotate_rows: RotateRows = 1_000_000,
    quiet: Quiet = False,
    as_json: Json = False,
) -> None:
    """Import tardis.dev CSV files into the snapshots and trades datasets."""
    from bookcast.paths import data_root
    from collector.importers.tardis import import_tardis

    root = data_root(data_dir)
    _run(f"importing {len(files)} tardis file(s) into {root}", root, as_json,
         lambda: import_tardis(files, root, parse_duration_ns(interval, what="interval"),
                               _depth(depth), symbol, _window(start, end),
                               rotate_rows=_rotate_rows(rotate_rows),
                               progress=_progress(quiet, as_json)))


@app.command("binance-depth")
def binance_depth(
    files: Annotated[list[Path], typer.Argument(help="Binance historical order-book update "
                                                     "files (T_DEPTH) or bookTicker files.")],
    data_dir: DataDir = None,
    interval: Interval = "1s",
    depth: Depth = None,
    venue: Annotated[str, typer.Option(help="binance-usdm (futures) or binance-spot.")] = (
        "binance-usdm"),
    symbol: Annotated[str | None, typer.Option(help="The symbol (bookTicker files name none "
                                                    "inside).")] = None,
    start: From = None,
    end: To = None,
    rotate_rows: RotateRows = 1_000_000,
    quiet: Quiet = False,
    as_json: Json = False,
) -> None:
    """Import Binance's historical order-book files; the grid is on exchange time."""
    from bookcast.paths import data_root
    from collector.importers.binance import import_binance

    root = data_root(data_dir)
    _run(f"importing {len(files)} Binance file(s) into {root}", root, as_json,
         lambda: import_binance(files, root, parse_duration_ns(interval, what="interval"),
                                _depth(depth), venue, symbol, _window(start, end),
                                rotate_rows=_rotate_rows(rotate_rows),
                                progress=_progress(quiet, as_json)))


def _progress(quiet: bool, as_json: bool) -> bool:
    return not quiet and not as_json and terminal.interactive()


def _run(activity: str, root: Path, as_json: bool, run) -> None:  # type: ignore[no-untyped-def]
    """Run one import, saying what it does if interrupted, and report it."""
    terminal.setup_logging()
    with interrupts.activity(activity):
        summary = run()
    _report(summary, root, as_json)


def _report(summary, root: Path, as_json: bool) -> None:  # type: ignore[no-untyped-def]
    if not summary.files_written:
        raise UserError("Nothing was imported: no rows fell inside --from/--to.")
    if as_json:
        from dataclasses import asdict

        terminal.print_json({
            "data_dir": root, "rows_read": summary.rows_read, "seconds": summary.seconds,
            "streams": [asdict(s) for s in summary.streams],
            "warnings": dict(summary.warnings.counts),
            "files": summary.files_written})
        return
    terminal.print_table(
        [Column("venue", align="left"), Column("symbol", align="left"),
         Column("data type", align="left"), Column("files"), Column("updates"),
         Column("rows written"), Column("resyncs"), Column("gaps"), Column("crossed")],
        [(s.venue, s.symbol, s.data_type, f"{s.files:,}", f"{s.updates:,}",
          f"{s.rows_written:,}", f"{s.resyncs:,}", f"{s.gaps:,}", f"{s.crossed:,}")
         for s in summary.streams],
        title=f"imported {summary.rows_read:,} rows in {summary.seconds:.1f} s "
              f"({summary.rows_per_second:,.0f} rows/s) into {root}", keys=2)
    if summary.warnings.counts:
        terminal.console(stderr=True).print(
            f"[yellow]warnings: {summary.warnings.summary()}[/yellow]", highlight=False)


def register(root: typer.Typer) -> None:
    root.add_typer(app, name="import")
