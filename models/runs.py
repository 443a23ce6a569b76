"""Run directories: train a model into an immutable `runs/<run_id>/`, list runs, load one
back and score new data with its stored normalisation (DESIGN.md, "Runs, predictions")."""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import os
import secrets
import shutil
import subprocess
from pathlib import Path
from typing import Any

import numpy as np

import bookcast
from bookcast.errors import UserError
from bookcast.paths import data_root, runs_dir
from bookcast.schema import PREDICTION_COLUMNS
from bookcast.timeutil import format_duration_ns
from models.config import TrainConfig
from models.dataset import ModelData, Splits, chronological_splits, load_model_data
from models.evaluate import write_plots
from models.forecaster import Calibration
from models.pipeline import (
    BASELINES,
    InputBuilder,
    Scalers,
    Scored,
    execution_trips,
    fit_and_score,
    input_window_ns,
    policy_report,
    usable_rows,
    verdict,
    without_short_clock,
)
from models.policy import ClassificationPolicy, TradingPolicy

PROJECT_ROOT = Path(__file__).resolve().parents[1]
VALIDATION_FILE = "validation_predictions.parquet"


def code_version() -> str:
    """`git describe` of the source tree, else the package version."""
    try:
        out = subprocess.run(["git", "describe", "--always", "--dirty", "--tags"],
                             cwd=PROJECT_ROOT, capture_output=True, text=True, timeout=5)
        if out.returncode == 0 and out.stdout.strip():
            return out.stdout.strip()
    except (OSError, subprocess.SubprocessError):
        pass
    return f"bookcast {bookcast.__version__} (no git commit)"


def new_run_id(config: TrainConfig) -> str:
    stamp = dt.datetime.now(dt.UTC).strftime("%Y%m%dT%H%M%SZ")
    return f"{stamp}-{config.model}-{format_duration_ns(config.horizon_ns)}-{secrets.token_hex(2)}"


def microprice_train_end_ns(data: ModelData) -> int | None:
    """Where the features builder stopped fitting the microprice table for this symbol."""
    table = data.config.get("microprice", {})
    entry = table.get(f"{data.venue} {data.symbol}") if isinstance(table, dict) else None
    value = entry.get("train_end_ns") if isinstance(entry, dict) else None
    return int(value) if value is not None else None


def model_splits(data: ModelData, config: TrainConfig) -> Splits:
    return chronological_splits(data.ts, usable_rows(data), data.horizon_ns,
                                input_window_ns(data, config), config.fractions,
                                min_val_start_ns=microprice_train_end_ns(data))


def _iso(ns: int) -> str:
    return dt.datetime.fromtimestamp(ns / 1e9, tz=dt.UTC).isoformat(timespec="milliseconds")


def _write_json(path: Path, payload: Any) -> None:
    path.write_text(json.dumps(payload, indent=2, default=_json_default))


def _json_default(value: Any) -> Any:
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, np.ndarray):
        return value.tolist()
    raise TypeError(f"not JSON serialisable: {type(value)}")


def save_forecaster(run_dir: Path, forecaster: Any) -> str:
    from models.train import TorchForecaster

    if isinstance(forecaster, TorchForecaster):
        import torch

        torch.save(forecaster.state(), run_dir / "model.pt")
        return "model.pt"
    import joblib

    joblib.dump(forecaster, run_dir / "model.pkl")
    return "model.pkl"


def load_forecaster(run_dir: Path, run: dict[str, Any]) -> Any:
    path = run_dir / run["model_file"]
    if path.suffix == ".pt":
        import torch

        from models.train import TorchForecaster

        return TorchForecaster.from_state(torch.load(path, map_location="cpu",
                                                     weights_only=False))
    import joblib

    return joblib.load(path)


def prediction_frame(data: ModelData, rows: np.ndarray, proba: np.ndarray,
                     signal: np.ndarray, classification: np.ndarray | None = None) -> Any:
    """PREDICTION_COLUMNS, then `signal` (the trading policy's decision at the run's fee)
    and `signal_classification` (the classification policy's)."""
    import polars as pl

    y = pl.Series("y", data.y[rows], dtype=pl.Int8)
    y = pl.select(pl.when(pl.Series(data.labelled[rows])).then(y)).to_series().alias("y")
    frame = pl.DataFrame({
        "ts": pl.Series(data.ts[rows]).cast(pl.Datetime("ns", "UTC")),
        "venue": [data.venue] * len(rows), "symbol": [data.symbol] * len(rows),
        "p_down": proba[:, 0], "p_flat": proba[:, 1], "p_up": proba[:, 2], "y": y,
        "signal": pl.Series(signal, dtype=pl.Int8),
    })
    if classification is not None:
        frame = frame.with_columns(signal_classification=pl.Series(classification,
                                                                   dtype=pl.Int8))
    assert tuple(frame.columns[:len(PREDICTION_COLUMNS)]) == PREDICTION_COLUMNS
    return frame


def metrics_payload(config: TrainConfig, data: ModelData, results: dict[str, Scored]
                    ) -> dict[str, Any]:
    model = results["model"]
    payload: dict[str, Any] = {"model": config.model, "split": "test",
                               "fee_bps": data.fee_bps, "horizon": data.horizon,
                               **model.test, "validation": model.validation, "baselines": {}}
    for name in BASELINES:
        payload["baselines"][name] = {**results[name].test,
                                      "validation": results[name].validation}
    payload.update(verdict(config.model, results, data.fee_bps))
    history = getattr(model.forecaster, "history_", None)
    if history is not None:
        payload["training"] = history.__dict__
    if hasattr(model.forecaster, "best_iteration_"):
        payload["training"] = {"best_iteration": model.forecaster.best_iteration_,
                               "selected_on": "validation log-loss"}
    return payload


def checkpoint_path_for(root: Path, config: TrainConfig, fingerprint: str) -> Path:
    """Same config + same data -> same checkpoint, so rerunning an interrupted command
    resumes it."""
    key = json.dumps({"config": config.to_dict(), "data": fingerprint}, sort_keys=True)
    folder = runs_dir(root) / ".checkpoints"
    folder.mkdir(parents=True, exist_ok=True)
    return folder / f"{hashlib.sha256(key.encode()).hexdigest()[:16]}.pt"


def train_run(data_dir: str | Path | None, config: TrainConfig, progress: bool = False,
              run_id: str | None = None) -> Path:
    """Train `config.model` with every baseline; write and return `runs/<run_id>/`."""
    config.validate()
    root = data_root(data_dir)
    data = load_model_data(root, config.horizon_ns, feature_set=config.feature_set,
                           venue=config.venue, symbol=config.symbol, levels=config.levels,
                           fee_bps=config.fee_bps)
    splits = model_splits(data, config)
    data = without_short_clock(data, int(data.ts[splits.train[-1]] - data.ts[splits.train[0]]))
    checkpoint = (checkpoint_path_for(root, config, data.fingerprint)
                  if config.model in ("mlp", "deeplob") else None)
    splits, scalers, results = fit_and_score(data, splits, config, checkpoint, progress)

    run_id = run_id or new_run_id(config)
    final = runs_dir(root) / run_id
    if final.exists():
        raise UserError(f"The run {run_id} already exists; runs are immutable.")
    tmp = runs_dir(root) / f".tmp-{run_id}"
    tmp.mkdir(parents=True)
    try:
        _write_run(tmp, run_id, data, splits, scalers, config, results)
        os.replace(tmp, final)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    if checkpoint is not None and checkpoint.exists():
        checkpoint.unlink()
    return final


def _write_run(run_dir: Path, run_id: str, data: ModelData, splits: Splits, scalers: Scalers,
               config: TrainConfig, results: dict[str, Scored]) -> None:
    from models.train import choose_device, device_name

    model = results["model"]
    model_file = save_forecaster(run_dir, model.forecaster)
    ranges = splits.ranges(data.ts)
    for r in ranges.values():
        r["first"], r["last"] = _iso(r["first_ts"]), _iso(r["last_ts"])
    run = {
        "run_id": run_id, "kind": "train", "model": config.model,
        "horizon": format_duration_ns(data.horizon_ns), "horizon_ns": data.horizon_ns,
        "feature_set": data.feature_set, "venue": data.venue, "symbol": data.symbol,
        "fee_bps": data.fee_bps, "round_trip_cost_bps": 2 * data.fee_bps,
        "model_file": model_file, "input_kind": model.forecaster.input_kind,
        "latency_ns": config.latency_ns if config.latency_ns is not None else data.interval_ns,
        "feature_names": data.feature_names, "price_level_features": data.price_columns,
        "levels": data.levels, "window": config.window,
        "data_range": {"first_ts": int(data.ts[0]), "last_ts": int(data.ts[-1]),
                       "first": _iso(int(data.ts[0])), "last": _iso(int(data.ts[-1])),
                       "rows": len(data), "labelled_rows": int(data.labelled.sum()),
                       "interval_ns": data.interval_ns},
        "splits": ranges, "embargo_ns": splits.embargo_ns,
        "dataset_fingerprint": data.fingerprint, "code_version": code_version(),
        "device": device_name(choose_device(config.device)) if config.model in (
            "mlp", "deeplob") else "cpu",
        "config": config.to_dict(),
        # calibration and both policies of the model and of every baseline, so a stored run
        # predicts, decides and re-derives its decision at another fee without refitting
        "rules": model.rules(),
        "baseline_rules": {b: results[b].rules() for b in BASELINES},
        "created_at": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
    }
    _write_json(run_dir / "run.json", run)
    _write_json(run_dir / "normalisation.json",
                {"fitted_on": "train split only", **scalers.to_dict()})
    _write_json(run_dir / "metrics.json", metrics_payload(config, data, results))
    prediction_frame(data, splits.test, model.proba_test, model.signal_test,
                     model.classification_test).write_parquet(run_dir / "predictions.parquet")
    import polars as pl

    pl.concat([prediction_frame(data, splits.test, results[b].proba_test,
                                results[b].signal_test, results[b].classification_test)
               .with_columns(baseline=pl.lit(b))
               for b in BASELINES]).write_parquet(run_dir / "baseline_predictions.parquet")
    # Validation probabilities of every estimator: what re-tuning a policy at another fee
    # or execution needs (the verdict, `bookcast backtest --fee-bps`), without refitting.
    pl.concat([prediction_frame(data, splits.val, results[n].proba_val,
                                results[n].trading.signals(results[n].proba_val))
               .with_columns(estimator=pl.lit(n)) for n in ("model", *BASELINES)]
              ).write_parquet(run_dir / VALIDATION_FILE)
    write_plots(run_dir, data.y[splits.test], model.proba_test, model.signal_test,
                f"{config.model} {format_duration_ns(data.horizon_ns)}")


# ---------------------------------------------------------------- reading runs


def find_run(data_dir: str | Path | None, run: str) -> Path:
    """A run id under the data root's runs/, or a path to a run directory."""
    as_path = Path(run)
    if (as_path / "run.json").is_file():
        return as_path
    candidate = runs_dir(data_root(data_dir)) / run
    if (candidate / "run.json").is_file():
        return candidate
    known = [r["run_id"] for r in list_runs(data_dir)]
    hint = f" Known runs: {', '.join(known[-5:])}." if known else " There are no runs yet."
    raise UserError(f"Unknown run '{run}' under {runs_dir(data_root(data_dir))}.{hint}")


def read_run(run_dir: Path) -> dict[str, Any]:
    return json.loads((run_dir / "run.json").read_text())


def list_runs(data_dir: str | Path | None) -> list[dict[str, Any]]:
    """One summary row per run, oldest first: the model's and best baseline's figures."""
    folder = runs_dir(data_root(data_dir))
    rows = []
    for run_dir in sorted(folder.glob("*/run.json")) if folder.is_dir() else []:
        run_dir = run_dir.parent
        if run_dir.name.startswith("."):
            continue
        try:
            run = read_run(run_dir)
            metrics = json.loads((run_dir / "metrics.json").read_text())
        except (OSError, json.JSONDecodeError):
            continue
        baselines = metrics.get("baselines", {})
        best = max(baselines.items(), key=lambda kv: kv[1].get("macro_f1", 0.0),
                   default=(None, {}))
        skill = metrics.get("probability_skill") or {}
        rows.append({
            "run_id": run["run_id"], "kind": run.get("kind", "train"), "model": run["model"],
            "horizon": run["horizon"], "venue": run["venue"], "symbol": run["symbol"],
            "fee_bps": run["fee_bps"], "macro_f1": metrics.get("macro_f1"),
            "val_macro_f1": metrics.get("validation", {}).get("macro_f1"),
            "best_baseline": best[0], "best_baseline_macro_f1": best[1].get("macro_f1"),
            "average_precision_up": skill.get("average_precision_up"),
            "prevalence_up": skill.get("prevalence_up"),
            "n_trades": metrics.get("n_trades"), "net_pnl_bps": metrics.get("net_pnl_bps"),
            "beats_baselines": all(metrics.get("beats_baselines", {}).values() or [False]),
        })
    return rows


def stored_rules(meta: dict[str, Any], estimator: str = "model"
                 ) -> tuple[Calibration, ClassificationPolicy, TradingPolicy]:
    """The calibration and both policies a run stored for `estimator` (model or a
    baseline); a run written by an older bookcast has none and must be retrained."""
    rules = meta.get("rules") if estimator == "model" else (
        meta.get("baseline_rules") or {}).get(estimator)
    if not rules:
        raise UserError(f"The run {meta.get('run_id')} stores no calibration or decision "
                        "policies (an older bookcast wrote it); retrain it with "
                        "`bookcast train`.")
    return (Calibration.from_dict(rules["calibration"]),
            ClassificationPolicy.from_dict(rules["classification_policy"]),
            TradingPolicy.from_dict(rules["trading_policy"]))


def predict_with_run(run: str, data_dir: str | Path | None,
                     out: Path | None = None) -> tuple[Path, dict[str, Any] | None]:
    """Score the features dataset under `data_dir` with a stored run; rows without a
    label are scored too (their `y` is null). Returns the file and, where labels
    exist, the report on them (both policies, at the run's fee)."""
    run_dir = find_run(data_dir, run)
    meta = read_run(run_dir)
    calibration, classification, trading = stored_rules(meta)
    config = TrainConfig.from_dict(meta["config"])
    root = data_root(data_dir)
    data = load_model_data(root, meta["horizon_ns"], feature_set=meta["feature_set"],
                           venue=meta["venue"], symbol=meta["symbol"], levels=meta["levels"],
                           fee_bps=meta["fee_bps"], require_labels=False,
                           price_columns=meta["price_level_features"])
    missing = [n for n in meta["feature_names"] if n not in data.feature_names]
    if missing:
        raise UserError(f"The features under {root} lack columns the run was trained on: "
                        f"{', '.join(missing[:5])}; rebuild them with the same feature set.")
    order = [data.feature_names.index(n) for n in meta["feature_names"]]
    data.features, data.feature_names = data.features[:, order], list(meta["feature_names"])
    norm = json.loads((run_dir / "normalisation.json").read_text())
    inputs = InputBuilder(data, Scalers.from_dict(norm), config.window)
    rows = np.flatnonzero(np.isfinite(data.book[:, 0]) & np.isfinite(data.book[:, 2]))
    if meta["model"] == "deeplob":
        rows = inputs.window_rows(rows)
    if len(rows) == 0:
        raise UserError(f"No rows under {root} can be scored by run {meta['run_id']}.")
    forecaster = load_forecaster(run_dir, meta)
    proba = calibration(forecaster.predict_proba(inputs(forecaster.input_kind, rows)))
    signal, by_class = trading.signals(proba), classification.signals(proba)
    out = out or root / "predictions" / f"run={meta['run_id']}" / "predictions.parquet"
    out.parent.mkdir(parents=True, exist_ok=True)
    prediction_frame(data, rows, proba, signal, by_class).write_parquet(out)
    mask = data.labelled[rows]
    report = None
    if mask.any():
        labelled = rows[mask]
        long_net, short_net = execution_trips(data, meta.get("latency_ns")).net(data.fee_bps)
        report = policy_report(data.y[labelled], by_class[mask], signal[mask],
                               long_net[labelled], short_net[labelled])
    return out, report
