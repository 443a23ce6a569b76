"""Collector subcommands: replay, inspect (and simulate, serve, collect when present)."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Annotated

import typer

from bookcast import terminal
from bookcast.errors import UserError
from bookcast.timeutil import parse_duration_ns

DataDir = Annotated[Path | None, typer.Option("--data-dir", help="Data root (default "
                                               "$BOOKCAST_DATA_DIR or ./data).")]


def parse_depth(text: str) -> int | None:
    """--depth N or 'full'."""
    if text.lower() == "full":
        return None
    if not text.isdigit() or int(text) < 1:
        raise UserError(f"The depth '{text}' is neither a positive number of levels nor 'full'.")
    return int(text)


def setup_logging(verbose: bool = False) -> None:
    logging.basicConfig(level=logging.INFO if verbose else logging.WARNING,
                        format="%(asctime)s %(levelname)s %(name)s %(message)s")


def replay(
    captures: Annotated[list[Path], typer.Argument(help="Capture files (gzip or zstd JSON Lines).")],
    data_dir: DataDir = None,
    interval: Annotated[str, typer.Option(help="Snapshot grid on receive time, 10ms..")] = "1s",
    depth: Annotated[str, typer.Option(help="Levels per side, or 'full'.")] = "100",
    venue: Annotated[str | None, typer.Option(help="Venue, if it cannot be told from the "
                                                   "capture.")] = None,
    symbol: Annotated[list[str] | None, typer.Option(help="Only these symbols.")] = None,
    rotate_rows: Annotated[int, typer.Option(help="Start a new Parquet file after this many "
                                                  "rows.")] = 1_000_000,
    rotate: Annotated[str | None, typer.Option(help="Start a new Parquet file after this much "
                                                    "data time, e.g. 1h.")] = None,
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="No progress bar.")] = False,
) -> None:
    """Replay captures into the snapshots and trades Parquet datasets."""
    from rich.table import Table

    from bookcast.paths import data_root
    from collector.replay import replay_captures

    setup_logging()
    if rotate_rows < 1:
        raise UserError(f"--rotate-rows {rotate_rows} must be at least 1.")
    rotate_ns = parse_duration_ns(rotate, what="rotation") if rotate else None
    summary = replay_captures(captures, data_root(data_dir), parse_duration_ns(interval,
                              what="interval"), parse_depth(depth), venue, symbol,
                              rotate_rows=rotate_rows, rotate_ns=rotate_ns,
                              progress=not quiet)
    console = terminal.console()
    table = Table(title=f"replayed {summary.records:,} records in {summary.seconds:.1f} s")
    for col in ("venue", "symbol", "messages", "updates", "snapshots", "trades", "gaps",
                "checksum fails"):
        table.add_column(col, justify="left" if col in ("venue", "symbol") else "right")
    for s in summary.streams:
        table.add_row(s.venue, s.symbol, f"{s.messages:,}", f"{s.updates:,}",
                      f"{s.snapshots:,}", f"{s.trades:,}", str(max(s.gaps, 0)),
                      str(s.checksum_failures))
    console.print(table)
    for s in summary.streams:
        console.print(f"{s.venue} {s.symbol}: {s.messages:,} messages, {s.updates:,} updates, "
                      f"{s.snapshots:,} snapshots, {s.trades:,} trades, {s.gaps} gaps",
                      highlight=False)
    if summary.malformed or summary.parse_errors:
        console.print(f"[yellow]skipped {summary.malformed} malformed lines and "
                      f"{summary.parse_errors} unparseable messages[/yellow]")


def inspect(data_dir: Annotated[Path | None, typer.Argument(help="Data root.")] = None) -> None:
    """Show what a data directory holds: venues, symbols, dates, rows, gaps, time range."""
    from bookcast.paths import data_root
    from collector.inspect import inspect_data_dir, print_inventory

    print_inventory(inspect_data_dir(data_root(data_dir)))


def register(app: typer.Typer) -> None:
    app.command("replay")(replay)
    app.command("inspect")(inspect)
    for module_name in ("collector.simulator.cli", "collector.emulator.cli",
                        "collector.daemon.cli", "collector.importers.cli",
                        "collector.exporters.cli"):
        try:
            module = __import__(module_name, fromlist=["register"])
        except ModuleNotFoundError as exc:
            if exc.name is not None and module_name.startswith(exc.name):
                continue
            raise
        module.register(app)
