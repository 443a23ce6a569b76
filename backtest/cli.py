"""`bookcast backtest`: a thin call into backtest.engine."""

from __future__ import annotations

from pathlib import Path

import typer

from bookcast.errors import UserError


def register(app: typer.Typer) -> None:
    @app.command("backtest")
    def backtest_command(
        run: str = typer.Option(..., "--run", help="Run id under <data-dir>/runs/."),
        data_dir: Path | None = typer.Option(None, "--data-dir", help="Data root."),
        fee_preset: str | None = typer.Option(
            None, "--fee-preset", help="Fee preset (bookcast.fees); default: the run's venue."),
        fee_bps: float | None = typer.Option(
            None, "--fee-bps", help="Fee per side in bps, overriding presets."),
        latency: str | None = typer.Option(
            None, "--latency", help="Signal-to-order latency, e.g. 100ms; default one snapshot."),
        notional: float | None = typer.Option(
            None, "--notional", help="Quote currency per trade (default 1000)."),
        size: float | None = typer.Option(None, "--size", help="Base units per trade."),
        threshold: str = typer.Option(
            "auto", "--threshold", help="'auto' (the model's argmax) or a probability."),
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
        from backtest.data import load_run
        from backtest.engine import BacktestConfig, backtest_run, write_backtest
        from backtest.report import print_report
        from backtest.signals import parse_threshold
        from bookcast.fees import resolve_fees
        from bookcast.paths import data_root
        from bookcast.timeutil import parse_duration_ns

        if notional is not None and size is not None:
            raise UserError("Give either --notional or --size, not both.")
        root = data_root(data_dir)
        loaded = load_run(root, run)
        fees = resolve_fees(fee_preset, fee_bps, loaded.venue)
        taker, maker_fee, source = fees.taker_bps, fees.maker_bps, fees.source
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
            fee_bps=taker, maker_fee_bps=maker_fee, maker=maker, fee_source=source,
            hold_ns=hold_ns, horizon_ns=loaded.horizon_ns, latency_ns=latency_ns,
            notional=1000.0 if notional is None else notional, size=size,
            threshold=parse_threshold(threshold), seed=seed,
        )
        result = backtest_run(root, loaded, config)
        where = write_backtest(result, root)
        if as_json:
            from bookcast.terminal import print_json

            print_json({"backtest_id": where.name, "path": where, "config": result.config,
                        "stats": result.stats})
            return
        print_report(result.config, result.stats, str(where))
