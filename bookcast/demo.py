"""`bookcast demo`: the whole product end to end, on the embedded simulator or real captures.

simulate -> serve + collect live (the real daemon) -> replay -> features + fee-aware labels
-> opportunity table -> train (baselines, LightGBM, DeepLOB) -> backtest at the venue's
fees -> one verdict table. Every step is the same code its own subcommand runs; the demo
prints that command beside each step.
"""

from __future__ import annotations

import json
import math
import shutil
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.table import Table

from bookcast import interrupts, terminal
from bookcast.errors import UserError
from bookcast.timeutil import format_duration_ns, parse_duration_ns

SIM_VENUE = "binance-spot"
HORIZONS = "1s,5s,10s,30s,60s"
console = terminal.console()


@dataclass
class DemoConfig:
    data_dir: Path
    hours: float = 2.0
    symbols: tuple[str, ...] = ("BTCUSDT", "ETHUSDT")
    seed: int = 7
    captures: tuple[Path, ...] = ()
    live_seconds: float = 30.0
    interval: str = "1s"
    horizon: str = "10s"
    # the labels' fee: the level a top-tier trader pays, so that some moves pay at all;
    # every backtest is then charged the venue's regular fee, and its fee curve shows both
    label_fee_bps: float = 1.0
    fee_preset: str | None = None  # None: the venue's regular-tier preset
    models: tuple[str, ...] = ("logistic", "lightgbm", "deeplob")
    deeplob_epochs: int = 2
    deeplob_max_train_rows: int = 3000
    steps_done: list[str] = field(default_factory=list)


def step(n: int, total: int, title: str, command: str) -> None:
    interrupts.now_doing(f"step {n}/{total} ({title})")
    console.rule(f"[bold]{n}/{total} {title}")
    console.print(f"[dim]same as: {command}[/dim]", highlight=False)


def run_demo(cfg: DemoConfig) -> list[dict[str, Any]]:
    """Run every stage; returns the verdict rows (also printed)."""
    from bookcast.fees import resolve_fees

    started = time.monotonic()
    root = cfg.data_dir
    root.mkdir(parents=True, exist_ok=True)
    real = bool(cfg.captures)
    total = 8
    interval_ns = parse_duration_ns(cfg.interval, what="interval")
    horizon_ns = parse_duration_ns(cfg.horizon, what="horizon")

    # 1. data
    if real:
        captures = [Path(p) for p in cfg.captures]
        step(1, total, "real captures", "(no simulation: --capture given)")
        venue, symbols = capture_market(captures)
        console.print(f"  {venue} {', '.join(symbols)} from {len(captures)} file(s)")
    else:
        venue, symbols = SIM_VENUE, list(cfg.symbols)
        from collector.simulator import preset_for, simulate_captures

        out = root / "captures"
        step(1, total, f"simulate {cfg.hours:g} h of {', '.join(cfg.symbols)}",
             f"bookcast simulate --hours {cfg.hours:g} --symbols {','.join(cfg.symbols)} "
             f"--seed {cfg.seed} --out {out}")
        simulate_captures(venue, [preset_for(venue, s) for s in cfg.symbols], "default",
                          cfg.hours, cfg.seed, out, progress=True)
        captures = sorted((out / venue).glob("*.jsonl.gz"))
    fees = resolve_fees(cfg.fee_preset, None, venue)

    # 2. live collection through the real daemon
    step(2, total, f"collect live for {cfg.live_seconds:g} s from the emulator",
         f"bookcast serve CAPTURES --speed 10 & bookcast collect --venue {venue} "
         f"--symbol ... --endpoint HOST:PORT --data-dir {root / 'live'}")
    live_collection(captures, venue, symbols, root / "live", cfg.live_seconds, interval_ns)

    # 3. replay
    from collector.replay import replay_captures

    step(3, total, "replay the captures into snapshots and trades",
         f"bookcast replay CAPTURES --data-dir {root} --interval {cfg.interval}")
    summary = replay_captures(captures, root, interval_ns, 100, progress=True)
    for s in summary.streams:
        console.print(f"  {s.venue} {s.symbol}: {s.messages:,} messages, {s.updates:,} level "
                      f"updates, {s.snapshots:,} snapshots, {s.trades:,} trades, {s.gaps} gaps")

    # 4. features and labels
    from features.build import build_features

    horizons_ns = [parse_duration_ns(h) for h in HORIZONS.split(",") if
                   parse_duration_ns(h) % interval_ns == 0]
    step(4, total, "features and fee-aware labels",
         f"bookcast features --data-dir {root} --horizons {HORIZONS} "
         f"--fee-bps {cfg.label_fee_bps:g}")
    build_features(root, "default", horizons_ns, fee_bps=cfg.label_fee_bps, progress=True)

    # 5. the opportunity table
    from features.cli import opportunities

    fee_levels = sorted({0.0, 1.0, 2.0, 5.0, fees.taker_bps})
    step(5, total, "opportunities: how often a move pays its costs",
         f"bookcast opportunities --data-dir {root} --fee-bps "
         f"{','.join(f'{f:g}' for f in fee_levels)}")
    opportunities(data_dir=root, horizons=",".join(format_duration_ns(h) for h in horizons_ns),
                  fee_bps=",".join(f"{f:g}" for f in fee_levels))

    # 6. models
    symbols = [s.symbol for s in summary.streams if s.snapshots]
    runs = train_models(cfg, root, venue, symbols, horizon_ns)

    if not runs:
        raise UserError(f"No model could be trained on {root}: the data is too short for "
                        f"train, validation and test splits with their embargo; simulate "
                        f"more --hours.")

    # 7. backtests
    backtests = backtest_runs(cfg, root, runs, fees)

    # 8. verdict
    step(8, total, "verdict", "bookcast runs; bookcast backtest --run ID")
    rows = verdict_rows(root, runs, backtests)
    print_verdict(rows, fees.taker_bps, cfg, real)
    console.print(f"\n[bold]Look at it:[/bold] bookcast dashboard --data-dir {root}   "
                  f"(then open http://127.0.0.1:8501)")
    console.print(f"demo finished in {time.monotonic() - started:.0f} s")
    return rows


def capture_market(captures: list[Path]) -> tuple[str, list[str]]:
    """The venue and the symbols with books in real captures (Binance only, for the live
    step's REST snapshots)."""
    from collector.replay import book_symbols, group_by_venue

    groups = group_by_venue(captures, None)
    if len(groups) != 1 or next(iter(groups)) not in ("binance-spot", "binance-usdm"):
        raise UserError(f"The demo runs on Binance spot or USD-M captures of one venue; got "
                        f"{', '.join(sorted(groups))}. Replay other venues with "
                        f"`bookcast replay`.")
    venue = next(iter(groups))
    symbols = book_symbols(captures, venue)
    if not symbols:
        raise UserError(f"The captures {', '.join(map(str, captures))} hold no depth updates.")
    return venue, symbols


def live_collection(captures: list[Path], venue: str, symbols: list[str], data_dir: Path,
                    seconds: float, interval_ns: int) -> None:
    """The emulator plays the captures; the real daemon collects them; its metrics print."""
    from collector.processes import DaemonProcess, EmulatorProcess
    from collector.replay import replay_captures

    if data_dir.exists():
        shutil.rmtree(data_dir)
    data_dir.mkdir(parents=True)
    emulator = EmulatorProcess(captures, "--speed", "10")
    daemon = None
    try:
        address = emulator.addresses[venue]
        args = ["--venue", venue, "--endpoint", address, "--interval",
                format_duration_ns(interval_ns), "--flush-interval", "5s"]
        for symbol in symbols:
            args += ["--symbol", symbol]
        daemon = DaemonProcess(data_dir, *args, log=data_dir.parent / "live-daemon.log")
        console.print(f"  emulator on {address}; daemon metrics on "
                      f"http://127.0.0.1:{daemon.metrics_port}/metrics")
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            time.sleep(min(10.0, max(0.1, deadline - time.monotonic())))
            m = daemon.metrics()
            console.print(
                f"  {time.monotonic() - daemon.started:4.0f} s: "
                f"{m.get('bookcast_messages_total', 0):,.0f} messages, "
                f"{m.get('bookcast_level_updates_total', 0):,.0f} level updates, "
                f"{m.get('bookcast_snapshots_written_total', 0):,.0f} snapshots, "
                f"{m.get('bookcast_trades_written_total', 0):,.0f} trades, "
                f"gaps {m.get('bookcast_gaps_total', 0):.0f}, "
                f"reconnects {m.get('bookcast_reconnects_total', 0):.0f}, "
                f"queue {m.get('bookcast_queue_depth', 0):.0f}", highlight=False)
        rc, took = daemon.terminate()
        console.print(f"  SIGTERM: the daemon flushed and exited {rc} in {took:.1f} s")
    finally:
        if daemon is not None:
            daemon.close()
        emulator.close()
    raw = sorted((data_dir / "raw").rglob("*.jsonl.zst"))
    if raw:
        check = data_dir.parent / "live-replayed"
        if check.exists():
            shutil.rmtree(check)
        replay_captures(raw, check, interval_ns, 100)
        same = _same_rows(data_dir / "snapshots", check / "snapshots")
        console.print(f"  replaying the daemon's own raw capture gives {same}")
        shutil.rmtree(check)


def _same_rows(live: Path, replayed: Path) -> str:
    import polars as pl

    if not live.exists():
        return "no rows (nothing was collected)"
    a = pl.read_parquet(live, hive_partitioning=True).sort("symbol", "ts")
    b = pl.read_parquet(replayed, hive_partitioning=True).sort("symbol", "ts")
    if a.equals(b):
        return f"the same {a.height:,} snapshot rows, row for row"
    return f"DIFFERENT rows: live {a.height:,}, replayed {b.height:,}"


def train_models(cfg: DemoConfig, root: Path, venue: str, symbols: list[str],
                 horizon_ns: int) -> list[Path]:
    from models.cli import print_metrics
    from models.config import TrainConfig
    from models.runs import train_run

    step(6, total_steps := 8, f"train {', '.join(cfg.models)} per symbol (baselines in every "
         "run)", f"bookcast train --data-dir {root} --model MODEL --horizon {cfg.horizon} "
         "--symbol SYMBOL")
    del total_steps
    runs = []
    for symbol in symbols:
        for model in cfg.models:
            config = TrainConfig(model=model, horizon_ns=horizon_ns, venue=venue, symbol=symbol,
                                 seed=cfg.seed, device="auto")
            if model == "deeplob":
                config.epochs = cfg.deeplob_epochs
                config.max_train_rows = cfg.deeplob_max_train_rows
            elif model == "mlp":
                config.epochs = 5
            try:
                run_dir = train_run(root, config, progress=True)
            except UserError as exc:
                console.print(f"  [yellow]{model} on {symbol} not trained: {exc}[/yellow]")
                continue
            metrics = json.loads((run_dir / "metrics.json").read_text())
            print_metrics(metrics, f"{symbol} {model}: {run_dir.name} (test split)")
            runs.append(run_dir)
    return runs


def backtest_runs(cfg: DemoConfig, root: Path, runs: list[Path], fees: Any) -> dict[str, Path]:
    from backtest.engine import BacktestConfig, backtest_run, write_backtest
    from backtest.report import summary_table

    step(7, 8, f"backtest every run at {fees.taker_bps:g} bps taker ({fees.source})",
         f"bookcast backtest --run RUN_ID --data-dir {root} --fee-preset "
         f"{fees.source.removeprefix('preset ')}")
    out: dict[str, Path] = {}
    for run_dir in runs:
        run = json.loads((run_dir / "run.json").read_text())
        config = BacktestConfig(fee_bps=fees.taker_bps, maker_fee_bps=fees.maker_bps,
                                fee_source=fees.source, hold_ns=run["horizon_ns"],
                                horizon_ns=run["horizon_ns"], seed=cfg.seed)
        try:
            result = backtest_run(root, run_dir.name, config)
        except UserError as exc:
            console.print(f"  [yellow]{run_dir.name}: not backtested: {exc}[/yellow]")
            continue
        where = write_backtest(result, root)
        console.print(summary_table(result.stats, f"{run['symbol']} {run['model']}: {where.name}"))
        out[run_dir.name] = where
    return out


def verdict_rows(root: Path, runs: list[Path], backtests: dict[str, Path]
                 ) -> list[dict[str, Any]]:
    """Per symbol: each model's row, then the comparison rows of its first backtest."""
    models: dict[str, list[dict[str, Any]]] = {}
    comparisons: dict[str, list[dict[str, Any]]] = {}
    for run_dir in runs:
        run = json.loads((run_dir / "run.json").read_text())
        metrics = json.loads((run_dir / "metrics.json").read_text())
        where = backtests.get(run_dir.name)
        stats = json.loads((where / "stats.json").read_text()) if where else {}
        symbol = run["symbol"]
        models.setdefault(symbol, []).append(_row(symbol, run["model"], metrics.get("macro_f1"),
                                                  stats))
        if where and symbol not in comparisons:
            base_f1 = {name: m.get("macro_f1") for name, m in metrics.get("baselines", {}).items()}
            comparisons[symbol] = [
                _row(symbol, f"({name})",
                     base_f1.get("imbalance_rule") if name.startswith("imbalance") else None, base)
                for name, base in stats.get("baselines", {}).items()]
    return [row for symbol in models for row in (*models[symbol], *comparisons.get(symbol, []))]


def _row(symbol: str, strategy: str, macro_f1: float | None, stats: dict) -> dict[str, Any]:
    return {"symbol": symbol, "strategy": strategy, "macro_f1": macro_f1,
            "n_trades": stats.get("n_trades"), "gross_pnl_mid": stats.get("gross_pnl_mid"),
            "spread_cost": stats.get("spread_cost"), "fees": stats.get("fees"),
            "net_pnl": stats.get("net_pnl"), "ci95": stats.get("net_pnl_per_trade_ci95"),
            "break_even_fee_bps": stats.get("break_even_fee_bps")}


def judgement(row: dict[str, Any]) -> str:
    """A few honest words per row: does it pay, and can we tell? "pays" and "loses" need
    at least 30 trades and a 95% interval of net PnL per trade wholly above or below 0."""
    n, ci = row["n_trades"], row["ci95"]
    if not n:
        return "no trades"
    if n < 30:
        return "too few trades"
    if ci is None or any(v is None or (isinstance(v, float) and math.isnan(v)) for v in ci):
        return "no interval"
    if ci[0] > 0:
        return "pays"
    if ci[1] < 0:
        return "loses"
    return "CI spans 0"


def print_verdict(rows: list[dict[str, Any]], fee_bps: float, cfg: DemoConfig,
                  real: bool) -> None:
    def money(x: float | None) -> str:
        return "-" if x is None else f"{x:,.2f}"

    table = Table(title=f"verdict: out of sample (test split), {fee_bps:g} bps taker fee per "
                        f"side, latency one snapshot, horizon {cfg.horizon} (labels for "
                        f"training assumed {cfg.label_fee_bps:g} bps)")
    for col in ("symbol", "strategy", "macro-F1", "trades", "gross edge", "spread", "fees",
                "net PnL", "net/trade 95% CI", "break-even fee", "verdict"):
        table.add_column(col, justify="left" if col in ("symbol", "strategy", "verdict")
                         else "right")
    for r in rows:
        ci = r["ci95"]
        table.add_row(r["symbol"], r["strategy"],
                      "-" if r["macro_f1"] is None else f"{r['macro_f1']:.3f}",
                      "-" if r["n_trades"] is None else str(r["n_trades"]),
                      money(r["gross_pnl_mid"]), money(r["spread_cost"]), money(r["fees"]),
                      money(r["net_pnl"]),
                      "-" if not ci else f"[{ci[0]:.2f}, {ci[1]:.2f}]",
                      "-" if r["break_even_fee_bps"] is None
                      else f"{r['break_even_fee_bps']:.2f} bps", judgement(r))
    console.print(table)
    models = [r for r in rows if not r["strategy"].startswith("(")]
    paying = [r for r in models if judgement(r).startswith("pays")]
    if paying:
        names = ", ".join(f"{r['symbol']} {r['strategy']}" for r in paying)
        console.print(f"[green]Pays after fees with a 95% interval above zero: {names}.[/green]")
    else:
        console.print(f"No model's net PnL per trade is above zero with 95% confidence at "
                      f"{fee_bps:g} bps: after spread and fees, these forecasts would not have "
                      f"made money. The break-even fee column says what fee they would need.")
    oracle = [r for r in rows if r["strategy"] == "(oracle)"]
    if oracle and all((r["net_pnl"] or 0.0) <= 0 for r in oracle):
        console.print(f"Even perfect foresight (the oracle) makes nothing at {fee_bps:g} bps "
                      f"over this horizon: the moves are smaller than the round-trip cost.")
    if real:
        console.print("[yellow]Real captures of a few minutes are too small a sample: these "
                      "figures cannot support a conclusion either way.[/yellow]")
    elif any(r["n_trades"] and r["n_trades"] < 30 for r in models):
        console.print("[yellow]Rows with fewer than 30 trades cannot support a conclusion "
                      "either way.[/yellow]")


def demo(
    data_dir: Annotated[Path | None, typer.Option("--data-dir", help="Where the demo writes "
                                                   "(default ./demo-data).")] = None,
    hours: Annotated[float, typer.Option(help="Simulated hours per symbol.")] = 2.0,
    symbols: Annotated[str, typer.Option(help="Symbols to simulate.")] = "BTCUSDT,ETHUSDT",
    capture: Annotated[list[Path] | None, typer.Option(help="Real capture files instead of "
                                                       "the simulator.")] = None,
    live_seconds: Annotated[float, typer.Option(help="Seconds of live collection.")] = 30.0,
    interval: Annotated[str | None, typer.Option(help="Snapshot grid (default 1s, 100ms with "
                                                      "--capture).")] = None,
    horizon: Annotated[str, typer.Option(help="Label horizon the models forecast.")] = "10s",
    label_fee_bps: Annotated[float, typer.Option(help="Fee per side the labels assume.")] = 1.0,
    fee_preset: Annotated[str | None, typer.Option(help="Fee preset the backtests charge "
                                                        "(default: the venue's).")] = None,
    models: Annotated[str, typer.Option(help="Models to train.")] = "logistic,lightgbm,deeplob",
    deeplob_epochs: Annotated[int, typer.Option(help="DeepLOB epochs (CPU: keep it small).")] = 2,
    seed: Annotated[int, typer.Option(help="Simulation and training seed.")] = 7,
) -> None:
    """Run the whole pipeline and print the verdict: would these forecasts have paid?"""
    from bookcast.paths import data_root

    if not hours > 0:
        raise UserError(f"--hours must be positive, not {hours}.")
    root = data_root(data_dir if data_dir is not None else Path("demo-data"))
    cfg = DemoConfig(data_dir=root, hours=hours,
                     symbols=tuple(s.strip().upper() for s in symbols.split(",") if s.strip()),
                     seed=seed, captures=tuple(capture or ()), live_seconds=live_seconds,
                     interval=interval or ("100ms" if capture else "1s"), horizon=horizon,
                     label_fee_bps=label_fee_bps, fee_preset=fee_preset,
                     models=tuple(m.strip() for m in models.split(",") if m.strip()),
                     deeplob_epochs=deeplob_epochs)
    run_demo(cfg)


def register(app: typer.Typer) -> None:
    app.command("demo")(demo)
