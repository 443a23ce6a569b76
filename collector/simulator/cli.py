"""`bookcast simulate`: hours of simulated order-book traffic, written as a venue's captures."""

from __future__ import annotations

import os
from pathlib import Path
from typing import TYPE_CHECKING

import typer

from bookcast.errors import UserError

if TYPE_CHECKING:
    from collector.simulator.presets import SymbolPreset

SCENARIO_HELP = ("default (the real statistics), null (the imbalance says nothing), quiet, "
                 "volatile (3x quiet), regime-switch (quiet/volatile every --switch-every), "
                 "or a preset FILE from --calibrate-from.")


def register(app: typer.Typer) -> None:
    app.command("simulate")(simulate_command)


def simulate_command(
    hours: float = typer.Option(1.0, "--hours", help="Simulated hours (0.05 = 3 min)."),
    out: Path | None = typer.Option(
        None, "--out", help="Directory for <venue>/<symbols>_sim_seed<S>.jsonl.gz "
                            "(not needed with --compare)."),
    symbols: str | None = typer.Option(
        None, "--symbols", help="Comma-separated symbols, as the venue spells them "
                                "(default: every symbol with a preset for --venue)."),
    seed: int = typer.Option(0, "--seed", help="Same seed, identical files."),
    venue: str = typer.Option("binance-spot", "--venue",
                              help="Protocol: binance-spot, binance-usdm, coinbase-advanced."),
    preset: str = typer.Option("default", "--preset", help=SCENARIO_HELP),
    switch_every: str = typer.Option("30m", "--switch-every",
                                     help="Regime length for --preset regime-switch."),
    calibrate_from: Path | None = typer.Option(
        None, "--calibrate-from",
        help="Estimate a preset from this real capture, write it to OUT, and simulate it."),
    calibrate_rounds: int = typer.Option(
        10, "--calibrate-rounds", help="Simulated-moment rounds of --calibrate-from."),
    compare_with: Path | None = typer.Option(
        None, "--compare", help="Print this real capture's statistics against the "
                                "simulator's, with the bands they must stay within."),
    markdown: bool = typer.Option(False, "--markdown",
                                  help="With --compare: print a Markdown table."),
    compression: str = typer.Option("gz", "--compression", help="gz or zst."),
) -> None:
    """Simulate order-book traffic (a queue-reactive model) as a venue's own capture."""
    from bookcast.timeutil import parse_duration_ns
    from collector.simulator.presets import check_venue

    if not hours > 0:
        raise UserError(f"--hours must be positive, not {hours}.")
    if compression not in ("gz", "zst"):
        raise UserError(f"--compression must be gz or zst, not '{compression}'.")
    if calibrate_rounds < 1:
        raise UserError(f"--calibrate-rounds must be at least 1, not {calibrate_rounds}.")
    switch_s = parse_duration_ns(switch_every, what="--switch-every") / 1e9
    if not switch_s > 0:
        raise UserError(f"--switch-every must be positive, not '{switch_every}'.")
    if compare_with is not None:
        _compare(compare_with, hours, seed, preset, symbols, switch_s, markdown,
                 calibrate_from, calibrate_rounds)
        return
    if out is None:
        raise UserError("--out names no directory; say where the captures go "
                        "(or use --compare).")
    _require_writable(out)
    if calibrate_from is not None:
        base = [_calibrated(calibrate_from, out, calibrate_rounds)]
        venue = base[0].venue
        scenario = preset if not Path(preset).suffix else "default"
    else:
        check_venue(venue)
        base, scenario = _base_presets(venue, symbols, preset)
    _simulate(base, venue, scenario, hours, seed, out, compression, switch_s)


def _base_presets(venue: str, symbols: str | None, preset: str) -> tuple[list, str]:
    """The presets to simulate and the scenario on them, from --preset and --symbols."""
    from collector.simulator.presets import PRESETS, SCENARIO_NAMES, load_preset, preset_for

    if preset not in SCENARIO_NAMES and (Path(preset).suffix or Path(preset).exists()):
        return [load_preset(preset)], "default"
    if symbols is None:
        names = [s for v, s in PRESETS if v == venue]
    else:
        names = [s.strip() for s in symbols.split(",") if s.strip()]
        if not names:
            raise UserError("--symbols names no symbol.")
    return [preset_for(venue, name) for name in names], preset


def _calibrated(capture: Path, out: Path | None, rounds: int) -> SymbolPreset:
    from rich.progress import Progress

    from collector.replay import sniff_venue
    from collector.simulator.calibrate import calibrate_preset
    from collector.simulator.presets import write_preset

    if not capture.is_file():
        raise UserError(f"The capture '{capture}' does not exist.")
    venue = sniff_venue(capture)
    if venue is None:
        raise UserError(f"Cannot tell which venue recorded '{capture}'.")
    with Progress() as bar:
        task = bar.add_task(f"calibrating from {capture.name}", total=rounds)
        found = calibrate_preset(capture, venue=venue, rounds=rounds,
                                 progress=lambda k, n: bar.update(task, completed=k)).preset
    if out is not None:
        written = write_preset(found, out / f"preset_{found.symbol.lower()}.toml")
        typer.echo(f"calibrated preset written to {written}")
    return found


def _simulate(base: list, venue: str, scenario: str, hours: float, seed: int, out: Path,
              compression: str, switch_s: float) -> None:
    from collector.simulator.simulate import simulate_captures

    for summary in simulate_captures(venue, base, scenario, hours, seed, out, compression,
                                     switch_s, progress=True):
        typer.echo(f"{summary.path}: {summary.diffs} diffs, {summary.trades} trades, "
                   f"{summary.speed:.0f}x real time")


def _compare(capture: Path, hours: float, seed: int, preset: str, symbols: str | None,
             switch_s: float, markdown: bool, calibrate_from: Path | None,
             rounds: int) -> None:
    from collector.simulator import compare
    from collector.simulator.presets import PRESETS, load_preset, regime_schedule

    def schedules_for(venue: str, found: list[str]) -> list:
        if calibrate_from is not None:
            bases, scenario = [_calibrated(calibrate_from, None, rounds)], preset
        elif Path(preset).suffix:
            bases, scenario = [load_preset(preset)], "default"
        else:
            wanted = found if symbols is None else [s.strip() for s in symbols.split(",")]
            bases = [PRESETS[(venue, s)] for s in wanted if (venue, s) in PRESETS]
            scenario = preset
        missing = [b.symbol for b in bases if b.symbol not in found or b.venue != venue]
        if missing:
            raise UserError(f"The capture '{capture}' holds no {venue} book of "
                            f"{', '.join(missing)}.")
        return [regime_schedule(b, scenario, hours, switch_s) for b in bases]

    results = compare.comparisons(capture, schedules_for, hours, seed)
    if markdown:
        typer.echo(compare.markdown_table(results))
        return
    from rich.table import Table

    from bookcast import terminal

    for r in results:
        table = Table(title=f"{r.venue} {r.symbol}: real capture against {hours:g} h "
                            f"simulated ({r.scenario}, seed {seed})")
        for column in ("statistic", "real", "simulated", "band", "within"):
            table.add_column(column)
        for row, band in zip(r.rows, compare.BANDS, strict=True):
            table.add_row(band.label, f"{row.real:.3f}", f"{row.simulated:.3f}",
                          f"[{row.low:.3f}, {row.high:.3f}]", "yes" if row.holds else "NO")
        terminal.console().print(table)


def _require_writable(out: Path) -> None:
    if out.exists() and not out.is_dir():
        raise UserError(f"--out '{out}' is a file, not a directory.")
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise UserError(f"--out '{out}' cannot be created: {exc.strerror}.") from None
    if not os.access(out, os.W_OK | os.X_OK):
        raise UserError(f"--out '{out}' is not writable.")
