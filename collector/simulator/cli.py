"""`bookcast simulate`: hours of simulated Binance traffic, written as capture files."""

from __future__ import annotations

import os
from pathlib import Path

import typer

from bookcast.errors import UserError


def register(app: typer.Typer) -> None:
    app.command("simulate")(simulate_command)


def simulate_command(
    hours: float = typer.Option(..., "--hours", help="Simulated hours per symbol (0.05 = 3 min)."),
    out: Path = typer.Option(..., "--out", help="Directory for <venue>/<symbol>_sim_seed<S>.jsonl.gz"),
    symbols: str = typer.Option("BTCUSDT,ETHUSDT", "--symbols", help="Comma-separated symbols."),
    seed: int = typer.Option(0, "--seed", help="Same seed, identical files."),
    venue: str = typer.Option("binance-spot", "--venue", help="Protocol to write."),
    preset_file: Path | None = typer.Option(None, "--preset",
                                            help="Use a preset file from --calibrate-from."),
    calibrate_from: Path | None = typer.Option(
        None, "--calibrate-from",
        help="Estimate a preset from this real capture, write it to OUT, and simulate it."),
    compression: str = typer.Option("gz", "--compression", help="gz or zst."),
) -> None:
    """Simulate order-book traffic (Cont-Stoikov-Talreja queues) as a venue's own capture."""
    from rich.progress import BarColumn, Progress, TextColumn, TimeRemainingColumn

    from collector.simulator.presets import check_venue, load_preset, preset_for, write_preset
    from collector.simulator.simulate import capture_path, simulate_symbol

    if not hours > 0:
        raise UserError(f"--hours must be positive, not {hours}.")
    if compression not in ("gz", "zst"):
        raise UserError(f"--compression must be gz or zst, not '{compression}'.")
    check_venue(venue)
    _require_writable(out)
    if calibrate_from is not None:
        from collector.simulator.calibrate import calibrate_preset

        found = calibrate_preset(calibrate_from, venue=venue)
        written = write_preset(found, out / f"preset_{found.symbol.lower()}.toml")
        typer.echo(f"calibrated preset written to {written}")
        presets = [found]
    elif preset_file is not None:
        presets = [load_preset(preset_file)]
    else:
        names = [s.strip().upper() for s in symbols.split(",") if s.strip()]
        if not names:
            raise UserError("--symbols names no symbol.")
        presets = [preset_for(venue, name) for name in names]

    columns = (TextColumn("{task.description}"), BarColumn(),
               TextColumn("{task.completed:.0f}/{task.total:.0f} simulated s"),
               TimeRemainingColumn())
    with Progress(*columns) as bar:
        for preset in presets:
            task = bar.add_task(f"{venue} {preset.symbol}", total=hours * 3600)
            path = capture_path(out, venue, preset.symbol, seed, compression)
            summary = simulate_symbol(preset, hours, seed, path,
                                      progress=lambda s, task=task: bar.update(task, completed=s))
            bar.console.print(f"{summary.path}: {summary.diffs} diffs, {summary.trades} trades, "
                              f"{summary.speed:.0f}x real time")


def _require_writable(out: Path) -> None:
    if out.exists() and not out.is_dir():
        raise UserError(f"--out '{out}' is a file, not a directory.")
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise UserError(f"--out '{out}' cannot be created: {exc.strerror}.") from None
    if not os.access(out, os.W_OK | os.X_OK):
        raise UserError(f"--out '{out}' is not writable.")
