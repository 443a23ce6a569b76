"""Model subcommands: train, runs, predict, walkforward. Thin calls into models.*."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from bookcast import terminal
from bookcast.cli import DataDir


def _config(model: str, horizon: str, loss: str, sampler: str, device: str, epochs: int,
            seed: int, feature_set: str, venue: str | None, symbol: str | None,
            fee_bps: float | None, batch_size: int, window: int) -> object:
    from bookcast.timeutil import parse_duration_ns
    from models.config import TrainConfig

    return TrainConfig(model=model, horizon_ns=parse_duration_ns(horizon, what="horizon"),
                       loss=loss, sampler=sampler, device=device, epochs=epochs, seed=seed,
                       feature_set=feature_set, venue=venue, symbol=symbol, fee_bps=fee_bps,
                       batch_size=batch_size, window=window).validate()


def _fmt(value: object, digits: int = 3) -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        return f"{value:.{digits}f}"
    return str(value)


def print_metrics(metrics: dict, title: str) -> None:
    """Two tables per run: how good the calibrated probabilities are, and what each policy
    does with them on the test split (both at the run's fee)."""
    from bookcast.terminal import Column

    rows = [("model", metrics), *metrics.get("baselines", {}).items()]

    def skill(m: dict, key: str, digits: int = 3) -> str:
        return _fmt((m.get("probability_skill") or {}).get(key), digits)

    def ap(m: dict, side: str) -> str:
        sk = m.get("probability_skill") or {}
        value, base = sk.get(f"average_precision_{side}"), sk.get(f"prevalence_{side}")
        return "-" if value is None else f"{value:.3f} ({_fmt(base)})"

    fee = metrics.get("fee_bps")
    terminal.print_table(
        [Column("estimator", align="left"), Column("AP up (base rate)"),
         Column("AP down (base rate)"), Column("Brier"), Column("ECE up"), Column("ECE down"),
         Column("log-loss")],
        [(name, ap(m, "up"), ap(m, "down"), skill(m, "brier"), skill(m, "ece_up"),
          skill(m, "ece_down"), skill(m, "log_loss")) for name, m in rows],
        title=f"{title}: calibrated probabilities (test)")
    terminal.print_table(
        [Column("estimator", align="left"), Column("F1 val"), Column("F1 test"),
         Column("P up"), Column("P down"), Column("trades"), Column("net", "bps"),
         Column("val trades")],
        [(name, _fmt(m.get("validation", {}).get("macro_f1")), _fmt(m["macro_f1"]),
          _fmt(m["per_class"]["up"]["precision"]), _fmt(m["per_class"]["down"]["precision"]),
          _fmt(m["n_trades"]), _fmt(m["net_pnl_bps"], 1),
          _fmt(m.get("validation", {}).get("n_trades"))) for name, m in rows],
        title=(f"Both policies on the test split at {_fmt(fee, 2)} bps per side. Classification "
               "(thresholds tuned for validation macro-F1): macro-F1, precision up and down. "
               "Trading (expected net edge above zero, margin tuned for validation net PnL): "
               "trades, net bps summed with each trade alone after one snapshot of latency."))
    if "verdict" in metrics:
        typer.echo(metrics["verdict"])


def train(
    data_dir: DataDir = None,
    model: Annotated[str, typer.Option(help="logistic, lightgbm, mlp or deeplob.")] = "lightgbm",
    horizon: Annotated[str, typer.Option(help="Label horizon, e.g. 10s.")] = "10s",
    loss: Annotated[str, typer.Option(help="ce, weighted-ce or focal (PyTorch models).")] = "weighted-ce",
    sampler: Annotated[str, typer.Option(help="none or balanced (training split only).")] = "none",
    device: Annotated[str, typer.Option(help="auto, cpu or cuda.")] = "auto",
    epochs: Annotated[int, typer.Option(help="Maximum epochs (PyTorch models).")] = 20,
    seed: Annotated[int, typer.Option(help="Random seed.")] = 0,
    feature_set: Annotated[str, typer.Option("--set", help="Feature set name.")] = "default",
    venue: Annotated[str | None, typer.Option(help="Venue, when the dataset holds several.")] = None,
    symbol: Annotated[str | None, typer.Option(help="Symbol, when the dataset holds several.")] = None,
    fee_bps: Annotated[float | None, typer.Option(help="Taker fee per side for the decision rule (default: the labels' fee).")] = None,
    batch_size: Annotated[int, typer.Option(help="Batch size (PyTorch models).")] = 256,
    window: Annotated[int, typer.Option(help="DeepLOB input window in snapshots.")] = 100,
    monotone: Annotated[bool, typer.Option(help="LightGBM: constrain p_up to rise with bid pressure.")] = False,
    compile: Annotated[bool, typer.Option("--compile", help="PyTorch models: torch.compile the network (pays off on long GPU runs).")] = False,
    deterministic: Annotated[bool, typer.Option("--deterministic", help="CUDA: fixed cuDNN algorithms, reproducible to the bit, instead of autotuned ones.")] = False,
) -> None:
    """Train a model and every baseline; write an immutable runs/<run_id>/."""
    import json

    from models.runs import train_run

    config = _config(model, horizon, loss, sampler, device, epochs, seed, feature_set, venue,
                     symbol, fee_bps, batch_size, window)
    config.monotone = monotone
    config.compile, config.deterministic = compile, deterministic
    run_dir = train_run(data_dir, config, progress=True)
    metrics = json.loads((run_dir / "metrics.json").read_text())
    print_metrics(metrics, f"{run_dir.name} (test split)")
    typer.echo(f"run written to {run_dir}")


def runs(
    data_dir: DataDir = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print {\"runs\": [...]} instead of "
                                                         "the table.")] = False,
) -> None:
    """List runs with their key metrics side by side (whole run ids, as --run takes them)."""
    from bookcast.errors import UserError
    from bookcast.paths import data_root
    from bookcast.terminal import Column
    from models.runs import list_runs

    if not data_root(data_dir).is_dir():
        raise UserError(f"The data directory '{data_root(data_dir)}' does not exist.")
    rows = list_runs(data_dir)
    if as_json:
        terminal.print_json({"runs": rows})
        return
    if not rows:
        typer.echo("no runs yet; train one with `bookcast train`")
        return
    columns = (("run_id", Column("run id", align="left")),
               ("model", Column("model", align="left")), ("horizon", Column("horizon")),
               ("symbol", Column("symbol", align="left")), ("fee_bps", Column("fee", "bps")),
               ("macro_f1", Column("macro-F1")), ("val_macro_f1", Column("val macro-F1")),
               ("best_baseline", Column("best baseline", align="left")),
               ("best_baseline_macro_f1", Column("its macro-F1")),
               ("n_trades", Column("trades")), ("net_pnl_bps", Column("net", "bps summed")),
               ("beats_baselines", Column("beats baselines", align="left")))
    terminal.print_table([c for _, c in columns],
                         [[_fmt(r[k]) for k, _ in columns] for r in rows], title="runs")


def predict(
    run: Annotated[str, typer.Option("--run", help="Run id (under DATA_DIR/runs) or run directory.")],
    data_dir: DataDir = None,
    out: Annotated[Path | None, typer.Option(help="Output Parquet file.")] = None,
) -> None:
    """Score the features under DATA_DIR with a stored run and its normalisation."""
    from models.runs import predict_with_run

    path, report = predict_with_run(run, data_dir, out)
    typer.echo(f"predictions written to {path}")
    if report is not None:
        typer.echo(f"on labelled rows: macro-F1 {report['macro_f1']:.3f}, "
                   f"{report['n_trades']} trades, net {report['net_pnl_bps']:.1f} bps")


def walkforward(
    data_dir: DataDir = None,
    model: Annotated[str, typer.Option(help="logistic, lightgbm, mlp or deeplob.")] = "lightgbm",
    horizon: Annotated[str, typer.Option(help="Label horizon, e.g. 10s.")] = "10s",
    train_window: Annotated[str, typer.Option(help="Training window, e.g. 6h.")] = "6h",
    step: Annotated[str, typer.Option(help="Test block and step, e.g. 1h.")] = "1h",
    loss: Annotated[str, typer.Option(help="ce, weighted-ce or focal.")] = "weighted-ce",
    sampler: Annotated[str, typer.Option(help="none or balanced.")] = "none",
    device: Annotated[str, typer.Option(help="auto, cpu or cuda.")] = "auto",
    epochs: Annotated[int, typer.Option(help="Maximum epochs (PyTorch models).")] = 10,
    seed: Annotated[int, typer.Option(help="Random seed.")] = 0,
    feature_set: Annotated[str, typer.Option("--set", help="Feature set name.")] = "default",
    venue: Annotated[str | None, typer.Option(help="Venue.")] = None,
    symbol: Annotated[str | None, typer.Option(help="Symbol.")] = None,
    fee_bps: Annotated[float | None, typer.Option(help="Taker fee per side.")] = None,
    window: Annotated[int, typer.Option(help="DeepLOB input window in snapshots.")] = 100,
) -> None:
    """Retrain on a rolling window and test on the next block; report each block and all."""
    from bookcast.terminal import Column
    from bookcast.timeutil import parse_duration_ns
    from models.pipeline import BASELINES
    from models.walkforward import walk_forward

    config = _config(model, horizon, loss, sampler, device, epochs, seed, feature_set, venue,
                     symbol, fee_bps, 256, window)
    run_dir, summary = walk_forward(
        data_dir, config, parse_duration_ns(train_window, what="train window"),
        parse_duration_ns(step, what="step"), progress=True)
    names = ("model", *BASELINES)
    columns = [Column("test block start (UTC)", align="left"),
               *(Column(f"{name} macro-F1 / net", "bps") for name in names)]
    rows = [(b["test_start"], *(f"{b[n]['macro_f1']:.3f} / {b[n]['net_pnl_bps']:.1f}"
                                for n in names)) for b in summary["blocks"]]
    agg = summary["aggregate"]
    rows.append(("all blocks", *(f"{agg[n]['macro_f1']:.3f} / {agg[n]['net_pnl_bps']:.1f}"
                                 for n in names)))
    terminal.print_table(columns, rows, title=f"walk-forward {model} (test blocks)")
    for block in summary["skipped_blocks"]:
        typer.echo(f"skipped: the block training from {block['train_start']}: "
                   f"{block['reason']}")
    if summary["skipped_blocks"]:
        typer.echo(f"{len(summary['skipped_blocks'])} of "
                   f"{len(summary['skipped_blocks']) + len(summary['blocks'])} blocks were "
                   "skipped; 'all blocks' pools the scored ones only.")
    typer.echo(f"walk-forward written to {run_dir}")


def register(app: typer.Typer) -> None:
    app.command("train")(train)
    app.command("runs")(runs)
    app.command("predict")(predict)
    app.command("walkforward")(walkforward)
