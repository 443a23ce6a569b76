"""`bookcast export hftbacktest`: raw captures -> an hftbacktest event file."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from bookcast import interrupts, terminal
from bookcast.timeutil import parse_duration_ns, parse_time_ns

app = typer.Typer(help="Export bookcast's raw captures in other tools' formats.",
                  no_args_is_help=True)


@app.command("hftbacktest")
def hftbacktest(
    venue: Annotated[str, typer.Option(help="Venue of the captures.")],
    symbol: Annotated[str, typer.Option(help="Symbol, spelled as the venue spells it.")],
    out: Annotated[Path, typer.Option(help="The .npz file to write.")],
    data_dir: Annotated[Path | None, typer.Option("--data-dir", help="Data root whose raw/ "
                                                  "captures are read (default "
                                                  "$BOOKCAST_DATA_DIR or ./data).")] = None,
    capture: Annotated[list[Path] | None, typer.Option(help="Capture files to read instead "
                                                            "of the data root's.")] = None,
    start: Annotated[str | None, typer.Option("--from", help="First time (ISO, UTC).")] = None,
    end: Annotated[str | None, typer.Option("--to", help="Last time (ISO, UTC).")] = None,
    base_latency: Annotated[str, typer.Option(help="Least feed latency to leave after moving "
                                                   "exchange times behind receive times.")] = (
        "0ms"),
) -> None:
    """Write one symbol's book and trade events in hftbacktest's .npz event layout."""
    from bookcast.paths import data_root
    from bookcast.timeutil import format_ts
    from collector.exporters.hftbacktest import export_hftbacktest

    terminal.setup_logging()
    with interrupts.activity(f"exporting {venue} {symbol} to {out}"):
        summary = export_hftbacktest(
            out, venue, symbol, None if capture else data_root(data_dir), capture,
            None if start is None else parse_time_ns(start, what="--from time"),
            None if end is None else parse_time_ns(end, what="--to time"),
            parse_duration_ns(base_latency, what="base latency"))
    console = terminal.console()
    span = (f"{format_ts(summary.first_ts)} to {format_ts(summary.last_ts)}"
            if summary.first_ts is not None else "no events")
    console.print(f"wrote {summary.path}: {summary.events:,} events ({summary.depth_events:,} "
                  f"depth, {summary.trades:,} trades), {span}, in {summary.seconds:.1f} s",
                  highlight=False)
    console.print(f"tick_size {summary.tick_size}, lot_size {summary.lot_size}; "
                  f"{summary.resyncs} resyncs, {summary.gaps} gaps; exchange times moved back "
                  f"{summary.exch_shift_ns / 1e6:.3f} ms", highlight=False)


def register(root: typer.Typer) -> None:
    root.add_typer(app, name="export")
