"""`bookcast backtest` and `bookcast verdict`: thin calls into backtest.engine and
backtest.verdict."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import typer

from bookcast.cli import DATA_DIR_HELP
from bookcast.errors import UserError


def charged_fees(fee_preset: str | None, fee_bps: float | None, venue: str,
                 run_fee_bps: float | None) -> Any:
    """The fees a backtest charges: --fee-bps, --fee-preset (for the run's venue only), or
    by default the run's own fee, so labels, decision and backtest share one fee."""
    from bookcast.fees import ResolvedFees, resolve_fees
    from bookcast.fees import fee_preset as preset_named

    if fee_preset is not None:
        preset = preset_named(fee_preset)
        if preset.venue not in (venue, "any"):
            raise UserError(f"The fee preset '{fee_preset}' is {preset.venue}'s, but this run "
                            f"trades on {venue}; choose a {venue} preset or pass --fee-bps.")
    if fee_preset is not None or fee_bps is not None or run_fee_bps is None:
        return resolve_fees(fee_preset, fee_bps, venue)
    return ResolvedFees(float(run_fee_bps), float(run_fee_bps), "the run's fee")


def register(app: typer.Typer) -> None:
    @app.command("backtest")
    def backtest_command(
        run: str = typer.Option(..., "--run", help="Run id under <data-dir>/runs/, or a run "
                                                   "directory."),
        data_dir: Path | None = typer.Option(None, "--data-dir", help="Data root (default: "
                                             "the run directory's, else $BOOKCAST_DATA_DIR "
                                             "or ./data)."),
        fee_preset: str | None = typer.Option(
            None, "--fee-preset", help="Fee preset of the run's venue (bookcast.fees)."),
        fee_bps: float | None = typer.Option(
            None, "--fee-bps", help="Fee per side in bps (default: the run's fee)."),
        latency: str | None = typer.Option(
            None, "--latency", help="Signal-to-order latency, e.g. 100ms; default one snapshot."),
        notional: float | None = typer.Option(
            None, "--notional", help="Quote currency per trade (default 1000)."),
        size: float | None = typer.Option(None, "--size", help="Base units per trade."),
        threshold: str = typer.Option(
            "auto", "--threshold", help="'auto' (the run's trading policy, re-derived at "
                                        "another fee) or a probability."),
        hold: str | None = typer.Option(
            None, "--hold", help="Holding time like 10s, or 'signal'; default the run's horizon."),
        maker: bool = typer.Option(
            False, "--maker", help="Passive entries at the touch, filled only when traded through."),
        seed: int = typer.Option(0, "--seed", help="Seed of the random comparison row."),
        as_json: bool = typer.Option(
            False, "--json", help='Print {"backtest_id", "path", "config", "stats"} instead '
                                  "of the tables."),
    ) -> None:
        """Would the run's predictions have made money after spread, fees and latency?"""
        from backtest.data import load_run_dir
        from backtest.decide import find_run_dir
        from backtest.engine import BacktestConfig, backtest_run, write_backtest
        from backtest.report import print_report
        from backtest.signals import parse_threshold
        from bookcast.timeutil import parse_duration_ns

        if notional is not None and size is not None:
            raise UserError("Give either --notional or --size, not both.")
        if fee_preset is not None and fee_bps is not None:
            raise UserError("Give either --fee-preset or --fee-bps, not both.")
        run_dir, root = find_run_dir(data_dir, run)
        loaded = load_run_dir(run_dir)
        fees = charged_fees(fee_preset, fee_bps, loaded.venue, loaded.info.get("fee_bps"))
        latency_ns = None
        if latency is not None:
            if latency.strip().startswith("-"):
                raise UserError(f"The latency '{latency}' is negative; it is zero or more.")
            latency_ns = parse_duration_ns(latency, what="latency")
        if hold is None:
            hold_ns: int | None = loaded.horizon_ns
        elif hold.strip().lower() == "signal":
            hold_ns = None
        else:
            hold_ns = parse_duration_ns(hold, what="holding time")
        config = BacktestConfig(
            fee_bps=fees.taker_bps, maker_fee_bps=fees.maker_bps, maker=maker,
            fee_source=fees.source, hold_ns=hold_ns, horizon_ns=loaded.horizon_ns,
            latency_ns=latency_ns, notional=1000.0 if notional is None else notional,
            size=size, threshold=parse_threshold(threshold), seed=seed,
        )
        result = backtest_run(root, loaded, config, run_dir=run_dir)
        where = write_backtest(result, root)
        if as_json:
            from bookcast.terminal import print_json

            print_json({"backtest_id": where.name, "path": where, "config": result.config,
                        "stats": result.stats})
            return
        print_report(result.config, result.stats, str(where))

    @app.command("verdict")
    def verdict_command(
        data_dir: Path | None = typer.Option(None, "--data-dir", help=DATA_DIR_HELP),
        symbol: str | None = typer.Option(None, "--symbol", help="Only this symbol."),
        as_json: bool = typer.Option(False, "--json", help="Print {\"rows\": [...]} instead "
                                     "of tables."),
        notional: float = typer.Option(1000.0, "--notional", help="Quote currency per trade, "
                                       "filled by walking the book."),
    ) -> None:
        """The answer: for each symbol, strategy, horizon, fee and execution, do the trained
        models' forecasts pay after spread and fees, out of sample? Writes
        reports/verdict.json and reports/verdict.png."""
        from backtest.verdict import print_verdict, run_verdict
        from bookcast import terminal
        from bookcast.paths import data_root

        report = run_verdict(data_root(data_dir), symbol=symbol, progress=not as_json,
                             notional=notional)
        if as_json:
            terminal.print_json({"rows": report.rows})
        else:
            print_verdict(report)
