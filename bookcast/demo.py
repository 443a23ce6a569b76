"""`bookcast demo`: the whole product end to end, on the embedded simulator or real captures.

simulate -> serve + collect live (the real daemon) -> replay -> features + fee-aware labels
-> opportunity table -> train (baselines, LightGBM, DeepLOB) -> backtest -> the verdict
over every fee, horizon and execution. One fee (`--fee-bps`) serves the labels, the
decision rules and the backtests; the verdict re-derives the decision at every other fee.
Every step is the same code its own subcommand runs; the demo prints that command beside
each step.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import time
from collections.abc import Iterator
from contextlib import AbstractContextManager, contextmanager, nullcontext
from dataclasses import dataclass, field
from pathlib import Path
from typing import Annotated, Any

import typer

from bookcast import interrupts, terminal
from bookcast.errors import UserError
from bookcast.timeutil import format_duration_ns, parse_duration_ns

SIM_VENUE = "binance-spot"
HORIZONS = "1s,5s,10s,30s,60s"
console = terminal.console()


@dataclass
class DemoConfig:
    data_dir: Path
    venue: str = SIM_VENUE  # the protocol the simulator writes
    hours: float = 2.0
    symbols: tuple[str, ...] = ("BTCUSDT", "ETHUSDT")
    seed: int = 7
    captures: tuple[Path, ...] = ()
    # long enough for several flushes, two metric reports and a raw capture to replay
    live_seconds: float = 10.0
    interval: str = "1s"
    horizon: str = "10s"
    # one fee for labels, decision rules and backtests: the level a top-tier trader pays,
    # so that some moves pay at all; the verdict shows every other fee beside it
    fee_bps: float = 1.0
    models: tuple[str, ...] = ("logistic", "lightgbm", "deeplob")
    # LightGBM is also trained at these horizons, so the verdict's heat-map has a model
    # across horizons; the other models forecast `horizon` only (DeepLOB is slow on a CPU)
    extra_horizons: tuple[str, ...] = ("1s", "5s", "30s", "60s")
    # DeepLOB on a CPU trains tens of windows a second: the demo shows the stage, a GPU
    # (or `bookcast train --model deeplob`) trains it for real
    deeplob_epochs: int = 1
    deeplob_max_train_rows: int = 1000
    stage_starts: list[tuple[int, float]] = field(default_factory=list)  # (step, monotonic)


STAGE_NAMES = {1: "data", 2: "live", 3: "replay", 4: "features", 5: "opportunities",
               6: "train", 7: "backtest", 8: "verdict"}


def step(cfg: DemoConfig, n: int, total: int, title: str, command: str) -> None:
    cfg.stage_starts.append((n, time.monotonic()))
    interrupts.now_doing(f"step {n}/{total} ({title})")
    console.rule(f"[bold]{n}/{total} {title}")
    console.print(f"[dim]same as: {command}[/dim]", highlight=False)


def run_demo(cfg: DemoConfig) -> list[dict[str, Any]]:
    """Run every stage; returns the verdict rows (also printed)."""
    started = time.monotonic()
    root = cfg.data_dir
    fresh_demo_dir(root)
    real = bool(cfg.captures)
    total = 8
    interval_ns = parse_duration_ns(cfg.interval, what="interval")
    horizon_ns = parse_duration_ns(cfg.horizon, what="horizon")

    # 1. data
    if real:
        captures = [Path(p) for p in cfg.captures]
        step(cfg, 1, total, "real captures", "(no simulation: --capture given)")
        venue, symbols = capture_market(captures)
        console.print(f"  {venue} {', '.join(symbols)} from {len(captures)} file(s)")
    else:
        venue, symbols = cfg.venue, list(cfg.symbols)
        from collector.simulator import preset_for, simulate_captures
        from collector.simulator.simulate import session_groups

        out = root / "captures"
        step(cfg, 1, total, f"simulate {cfg.hours:g} h of {', '.join(cfg.symbols)}",
             f"bookcast simulate --hours {cfg.hours:g} --symbols {','.join(cfg.symbols)} "
             f"--seed {cfg.seed} --out {out}")
        # Sessions are independent (one random stream per symbol), so the later ones run
        # as the real `bookcast simulate` in a child process beside the first: same files.
        first, *later = session_groups(venue, list(cfg.symbols))
        others = [s for group in later for s in group]
        with background_simulation(venue, others, cfg.hours, cfg.seed, out) as beside:
            if beside is not None:
                console.print(f"  [dim]({', '.join(others)} in a second process beside "
                              f"it)[/dim]")
            simulate_captures(venue, [preset_for(venue, s) for s in first], "default",
                              cfg.hours, cfg.seed, out, progress=True)
            if beside is not None:
                beside.result()
        captures = sorted((out / venue).glob("*.jsonl.gz"))

    # 3. replay, started first: the real `bookcast replay` runs in its own process while
    # the live window (step 2) mostly waits, so the two share the machine's cores
    with background_replay(captures, venue, root, cfg.interval) as replay:
        # 2. live collection through the real daemon
        step(cfg, 2, total, f"collect live for {cfg.live_seconds:g} s from the emulator",
             f"bookcast serve CAPTURES --speed 10 & bookcast collect --venue {venue} "
             f"--symbol ... --endpoint HOST:PORT --data-dir {root / 'live'}")
        live_collection(captures, venue, symbols, root / "live", cfg.live_seconds,
                        interval_ns)

        step(cfg, 3, total, "replay the captures into snapshots and trades",
             f"bookcast replay CAPTURES --data-dir {root} --interval {cfg.interval}")
        console.print("  [dim](it has been running in its own process since step 2)[/dim]")
        console.print(replay.result(), highlight=False)
    symbols = replayed_symbols(root)

    # 4. features and labels
    from features.build import build_features

    horizons_ns = [parse_duration_ns(h) for h in HORIZONS.split(",") if
                   parse_duration_ns(h) % interval_ns == 0]
    step(cfg, 4, total, "features and fee-aware labels",
         f"bookcast features --data-dir {root} --horizons {HORIZONS} "
         f"--fee-bps {cfg.fee_bps:g}")
    build_features(root, "default", horizons_ns, fee_bps=cfg.fee_bps, progress=True)

    # 5. the opportunity table
    from backtest.verdict import fee_levels as verdict_fees
    from features.cli import opportunities

    fee_levels = verdict_fees(venue)
    step(cfg, 5, total, "opportunities: how often a move pays its costs",
         f"bookcast opportunities --data-dir {root} --fee-bps "
         f"{','.join(f'{f:g}' for f in fee_levels)}")
    opportunities(data_dir=root, horizons=",".join(format_duration_ns(h) for h in horizons_ns),
                  fee_bps=",".join(f"{f:g}" for f in fee_levels))

    # 6. models
    trained_horizons = {format_duration_ns(h) for h in horizons_ns}
    extra = [parse_duration_ns(h) for h in cfg.extra_horizons if h in trained_horizons]
    runs = train_models(cfg, root, venue, symbols, horizon_ns, extra)

    if not runs:
        raise UserError(f"No model could be trained on {root}: the data is too short for "
                        f"train, validation and test splits with their embargo; simulate "
                        f"more --hours.")

    # 7. backtests
    backtest_runs(cfg, root, runs)

    # 8. the verdict
    from backtest.verdict import print_verdict, run_verdict

    step(cfg, 8, total, "the verdict: every strategy, horizon, fee and execution, out of sample",
         f"bookcast verdict --data-dir {root}")
    report = run_verdict(root)
    print_verdict(report)
    if real:
        console.print("[yellow]Real captures of a few minutes are a small sample: the verdict "
                      "says what more data it would need rather than guess.[/yellow]")
    console.print(f"\n[bold]Look at it:[/bold] bookcast dashboard --data-dir {root}   "
                  f"(then open http://127.0.0.1:8501)")
    console.print(f"demo finished in {time.monotonic() - started:.0f} s")
    console.print(f"  per step: {stage_times(cfg.stage_starts, time.monotonic())}",
                  highlight=False)
    return report.rows


def stage_times(starts: list[tuple[int, float]], end: float) -> str:
    """Seconds per step, each until the next began; the replay (3) runs beside the live
    window (2), so its figure is the wait for it after the window closed."""
    ends = [t for _, t in starts[1:]] + [end]
    return ", ".join(f"{STAGE_NAMES.get(n, n)} {stop - begin:.0f} s"
                     for (n, begin), stop in zip(starts, ends, strict=True))


DEMO_MARKER = ".bookcast-demo"


def fresh_demo_dir(root: Path) -> None:
    """An empty data root for this run: a previous demo's output is removed (mixing two
    runs' data would mix their markets), anything else is refused rather than touched."""
    if root.exists() and not root.is_dir():
        raise UserError(f"--data-dir '{root}' is a file, not a directory.")
    if root.is_dir() and any(root.iterdir()):
        if not (root / DEMO_MARKER).exists():
            raise UserError(f"--data-dir '{root}' already holds data that the demo did not "
                            f"write; give the demo a directory of its own.")
        for child in root.iterdir():
            if child.name != DEMO_MARKER:
                shutil.rmtree(child) if child.is_dir() else child.unlink()
    root.mkdir(parents=True, exist_ok=True)
    (root / DEMO_MARKER).write_text("written by `bookcast demo`; a new demo run clears it\n")


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


class BackgroundCommand:
    """A bookcast command in a child process, its output in files read when needed."""

    def __init__(self, args: list[str], out: Any, err: Any, what: str) -> None:
        self.out, self.err, self.what = out, err, what
        self.proc = subprocess.Popen(args, stdout=out, stderr=err, text=True)

    def result(self) -> str:
        """Wait for the command; its output, or its own sentence as the demo's error."""
        rc = self.proc.wait()
        self.out.seek(0)
        self.err.seek(0)
        out, err = self.out.read(), self.err.read()
        if rc != 0:
            last = next((ln for ln in reversed(err.splitlines()) if ln.strip()), f"exit {rc}")
            raise UserError(f"The {self.what} failed: {last.removeprefix('error: ')}")
        return out.rstrip()

    def stop(self) -> None:
        """Stop a command still running (the demo was interrupted or failed) with SIGTERM,
        which `bookcast replay` and `bookcast simulate` answer by leaving only whole
        files."""
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=60)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()


@contextmanager
def background_command(args: list[str], what: str) -> Iterator[BackgroundCommand]:
    """`bookcast ARGS` in a child process for the block; stopped (SIGTERM) if still running
    when the block ends, before the demo says anything of an interrupt."""
    import sys
    import tempfile

    with tempfile.TemporaryFile("w+") as out, tempfile.TemporaryFile("w+") as err:
        command = BackgroundCommand([sys.executable, "-m", "bookcast", *args], out, err, what)
        try:
            yield command
        finally:
            with interrupts.shielded():  # the child stops before the demo says it has
                command.stop()


def background_replay(captures: list[Path], venue: str, root: Path,
                      interval: str) -> AbstractContextManager[BackgroundCommand]:
    return background_command(["replay", *map(str, captures), "--venue", venue,
                               "--data-dir", str(root), "--interval", interval,
                               "--depth", "100", "--quiet"], "replay of the captures")


def background_simulation(venue: str, symbols: list[str], hours: float, seed: int,
                          out: Path) -> AbstractContextManager[BackgroundCommand | None]:
    """`bookcast simulate` of `symbols` beside the demo's own (None when there are none)."""
    if not symbols:
        return nullcontext()
    return background_command(["simulate", "--venue", venue, "--symbols", ",".join(symbols),
                               "--hours", f"{hours!r}", "--seed", str(seed), "--out",
                               str(out)], f"simulation of {', '.join(symbols)}")


def replayed_symbols(root: Path) -> list[str]:
    """The symbols the replay wrote snapshot rows for, in partition order."""
    from features.partitions import snapshot_partitions

    return list(dict.fromkeys(p.symbol for p in snapshot_partitions(root)))


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
                format_duration_ns(interval_ns), "--flush-interval", "2s"]
        for symbol in symbols:
            args += ["--symbol", symbol]
        daemon = DaemonProcess(data_dir, *args, log=data_dir.parent / "live-daemon.log")
        console.print(f"  emulator on {address}; daemon metrics on "
                      f"http://127.0.0.1:{daemon.metrics_port}/metrics")
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            report_at = min(deadline, time.monotonic() + 5.0)
            while time.monotonic() < report_at:  # short sleeps: a signal stops it at once
                time.sleep(min(0.25, max(0.0, report_at - time.monotonic())))
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
        try:
            rc, took = daemon.terminate(timeout=60.0)  # a busy machine slows the last flush
            console.print(f"  SIGTERM: the daemon flushed and exited {rc} in {took:.1f} s")
        except subprocess.TimeoutExpired:
            console.print("  [yellow]SIGTERM: the daemon did not stop within 60 s; it is "
                          "killed, so its last flush may be missing[/yellow]")
    finally:
        with interrupts.shielded():  # the daemon's last flush must not be cut short
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
                 horizon_ns: int, extra_horizons_ns: list[int]) -> list[Path]:
    from models.cli import print_metrics
    from models.config import TrainConfig
    from models.runs import train_run

    step(cfg, 6, 8, f"train {', '.join(cfg.models)} per symbol at {cfg.horizon} (LightGBM also at "
         f"{', '.join(format_duration_ns(h) for h in extra_horizons_ns) or 'no other horizon'}),"
         f" baselines in every run, at {cfg.fee_bps:g} bps",
         f"bookcast train --data-dir {root} --model MODEL --horizon {cfg.horizon} "
         "--symbol SYMBOL")
    plan = [(model, horizon_ns) for model in cfg.models]
    if "lightgbm" in cfg.models:
        plan += [("lightgbm", h) for h in extra_horizons_ns if h != horizon_ns]
    runs = []
    for symbol in symbols:
        for model, h in plan:
            config = TrainConfig(model=model, horizon_ns=h, venue=venue, symbol=symbol,
                                 seed=cfg.seed, device="auto", fee_bps=cfg.fee_bps)
            if model == "deeplob":
                config.epochs = cfg.deeplob_epochs
                config.max_train_rows = cfg.deeplob_max_train_rows
            elif model == "mlp":
                config.epochs = 5
            try:
                run_dir = train_run(root, config, progress=h == horizon_ns)
            except UserError as exc:
                console.print(f"  [yellow]{model} {format_duration_ns(h)} on {symbol} not "
                              f"trained: {exc}[/yellow]")
                continue
            if h == horizon_ns:
                metrics = json.loads((run_dir / "metrics.json").read_text())
                print_metrics(metrics, f"{symbol} {model}: {run_dir.name} (test split)")
            runs.append(run_dir)
    return runs


def backtest_runs(cfg: DemoConfig, root: Path, runs: list[Path]) -> dict[str, Path]:
    """Each run at the demo's horizon, backtested at the fee its labels and rule used."""
    from backtest.engine import BacktestConfig, backtest_run, write_backtest
    from backtest.report import quote_currency, summary_table

    step(cfg, 7, 8,
         f"backtest every {cfg.horizon} run at its own fee, {cfg.fee_bps:g} bps per side",
         f"bookcast backtest --run RUN_ID --data-dir {root}")
    out: dict[str, Path] = {}
    horizon_ns = parse_duration_ns(cfg.horizon, what="horizon")
    for run_dir in runs:
        run = json.loads((run_dir / "run.json").read_text())
        if run["horizon_ns"] != horizon_ns:
            continue  # the verdict judges the other horizons
        config = BacktestConfig(fee_bps=run["fee_bps"], maker_fee_bps=run["fee_bps"],
                                fee_source="the run's fee", hold_ns=run["horizon_ns"],
                                horizon_ns=run["horizon_ns"], seed=cfg.seed)
        try:
            result = backtest_run(root, run_dir.name, config)
        except UserError as exc:
            console.print(f"  [yellow]{run_dir.name}: not backtested: {exc}[/yellow]")
            continue
        where = write_backtest(result, root)
        print(summary_table(result.stats, f"{run['symbol']} {run['model']}: {where.name}",
                            quote_currency(run["symbol"])) + "\n", flush=True)
        out[run_dir.name] = where
    return out


def demo(
    data_dir: Annotated[Path | None, typer.Option("--data-dir", help="Where the demo writes "
                                                   "(default ./demo-data).")] = None,
    hours: Annotated[float, typer.Option(help="Simulated hours per symbol.")] = 2.0,
    venue: Annotated[str, typer.Option(help="Protocol the simulator writes: binance-spot, "
                                            "binance-usdm or coinbase-advanced.")] = SIM_VENUE,
    symbols: Annotated[str | None, typer.Option(help="Symbols to simulate (default: the "
                                                     "venue's presets).")] = None,
    capture: Annotated[list[Path] | None, typer.Option(help="Real capture files instead of "
                                                       "the simulator.")] = None,
    live_seconds: Annotated[float, typer.Option(help="Seconds of live collection.")] = 10.0,
    interval: Annotated[str | None, typer.Option(help="Snapshot grid (default 1s, 100ms with "
                                                      "--capture).")] = None,
    horizon: Annotated[str, typer.Option(help="Label horizon the models forecast.")] = "10s",
    fee_bps: Annotated[float, typer.Option(help="Fee per side for the labels, the decision "
                                                "rules and the backtests (the verdict shows "
                                                "every fee).")] = 1.0,
    models: Annotated[str, typer.Option(help="Models to train.")] = "logistic,lightgbm,deeplob",
    deeplob_epochs: Annotated[int, typer.Option(help="DeepLOB epochs (CPU: keep it small).")] = 1,
    seed: Annotated[int, typer.Option(help="Simulation and training seed.")] = 7,
) -> None:
    """Run the whole pipeline and print the verdict: would these forecasts have paid?"""
    from bookcast.paths import data_root
    from collector.simulator.presets import PRESETS, check_venue

    if not hours > 0:
        raise UserError(f"--hours must be positive, not {hours}.")
    check_venue(venue)
    if fee_bps < 0:
        raise UserError(f"The fee {fee_bps} bps is negative; fees are zero or more.")
    for path in capture or ():
        if not path.is_file():  # said before the data directory is touched
            raise UserError(f"The capture file '{path}' does not exist.")
    root = data_root(data_dir if data_dir is not None else Path("demo-data"))
    names = (symbols.split(",") if symbols is not None
             else [s for v, s in PRESETS if v == venue])
    cfg = DemoConfig(data_dir=root, venue=venue, hours=hours,
                     symbols=tuple(s.strip().upper() for s in names if s.strip()),
                     seed=seed, captures=tuple(capture or ()), live_seconds=live_seconds,
                     interval=interval or ("100ms" if capture else "1s"), horizon=horizon,
                     fee_bps=fee_bps,
                     models=tuple(m.strip() for m in models.split(",") if m.strip()),
                     deeplob_epochs=deeplob_epochs)
    run_demo(cfg)


def register(app: typer.Typer) -> None:
    app.command("demo")(demo)
