"""Collector subcommands: replay, inspect (and simulate, serve, collect when present)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from bookcast import interrupts, terminal
from bookcast.errors import UserError
from bookcast.terminal import Column
from bookcast.timeutil import format_duration_ns, parse_duration_ns

DataDir = Annotated[Path | None, typer.Option("--data-dir", help="Data root (default "
                                               "$BOOKCAST_DATA_DIR or ./data).")]


def parse_depth(text: str) -> int | None:
    """--depth N or 'full'."""
    if text.lower() == "full":
        return None
    if not text.isdigit() or int(text) < 1:
        raise UserError(f"The depth '{text}' is neither a positive number of levels nor 'full'.")
    return int(text)


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
    from bookcast.paths import data_root
    from collector.replay import replay_captures

    terminal.setup_logging()
    if rotate_rows < 1:
        raise UserError(f"--rotate-rows {rotate_rows} must be at least 1.")
    rotate_ns = parse_duration_ns(rotate, what="rotation") if rotate else None
    root = data_root(data_dir)
    interval_ns = parse_duration_ns(interval, what="interval")
    with interrupts.activity(f"replaying {len(captures)} capture file(s) into {root}"):
        summary = replay_captures(captures, root, interval_ns, parse_depth(depth), venue,
                                  symbol, rotate_rows=rotate_rows, rotate_ns=rotate_ns,
                                  progress=not quiet and terminal.interactive())
    terminal.print_table(
        [Column("venue", align="left"), Column("symbol", align="left"), Column("messages"),
         Column("level updates"), Column("snapshot rows"), Column("trades"), Column("gaps"),
         Column("checksum fails")],
        [(s.venue, s.symbol, f"{s.messages:,}", f"{s.updates:,}", f"{s.snapshots:,}",
          f"{s.trades:,}", f"{max(s.gaps, 0):,}", f"{s.checksum_failures:,}")
         for s in summary.streams],
        title=f"replayed {summary.records:,} records in {summary.seconds:.1f} s into "
              f"{root} ({format_duration_ns(interval_ns)} grid)", keys=2)
    console = terminal.console()
    if summary.malformed or summary.parse_errors:
        console.print(f"[yellow]skipped {summary.malformed} malformed lines and "
                      f"{summary.parse_errors} unparseable messages[/yellow]")


def inspect(
    data_dir: DataDir = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print one JSON document (keys in "
                                                         "docs/architecture.md).")] = False,
    positional: Annotated[Path | None, typer.Argument(hidden=True, show_default=False,
                                                      help="Data root (old spelling of "
                                                           "--data-dir).")] = None,
) -> None:
    """Show what a data directory holds: snapshots and trades per venue, symbol and date
    (rows, gaps, time range), feature sets, runs and backtests."""
    from bookcast.paths import data_root
    from collector.inspect import inventory, inventory_json, print_inventory

    if data_dir is not None and positional is not None and data_dir != positional:
        raise UserError(f"Give the data directory once: --data-dir {data_dir} or "
                        f"{positional}, not both.")
    found = inventory(data_root(data_dir if data_dir is not None else positional))
    if as_json:
        terminal.print_json(inventory_json(found))
    else:
        print_inventory(found)


def register(app: typer.Typer) -> None:
    app.command("replay")(replay)
    app.command("inspect")(inspect)
    for module_name in ("collector.simulator.cli", "collector.emulator.cli",
                        "collector.daemon.cli"):
        try:
            module = __import__(module_name, fromlist=["register"])
        except ModuleNotFoundError as exc:
            if exc.name is not None and module_name.startswith(exc.name):
                continue
            raise
        module.register(app)
