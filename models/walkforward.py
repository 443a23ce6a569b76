"""Walk-forward evaluation: retrain on a rolling window, test on the block after it.

Markets drift, so one chronological split says little about next week. Each block is a
small training run (same `fit_and_score`, same embargo); the aggregate pools every
block's test predictions and scores them once.
"""

from __future__ import annotations

import datetime as dt
import os
import shutil
from pathlib import Path
from typing import Any

import numpy as np

from bookcast.errors import UserError
from bookcast.paths import data_root, runs_dir
from bookcast.timeutil import format_duration_ns
from models.config import TrainConfig
from models.dataset import load_model_data, window_splits
from models.pipeline import (
    BASELINES,
    execution_trips,
    fit_and_score,
    input_window_ns,
    policy_report,
    usable_rows,
    without_short_clock,
)
from models.runs import _iso, _write_json, code_version, new_run_id, prediction_frame

MIN_TRAIN_ROWS = 30  # a block with fewer training rows is skipped (and said so)


def walk_forward(data_dir: str | Path | None, config: TrainConfig, train_ns: int, step_ns: int,
                 progress: bool = False) -> tuple[Path, dict[str, Any]]:
    """Run every block; write `runs/<id>/` (kind 'walkforward') and return it with the
    summary: per-block macro-F1 and net PnL for the model and each baseline, the blocks
    that could not be scored with the reason (`skipped_blocks`), and the aggregate over
    the scored blocks."""
    config.validate()
    if train_ns <= 0 or step_ns <= 0:
        raise UserError("--train-window and --step must be positive durations.")
    root = data_root(data_dir)
    data = load_model_data(root, config.horizon_ns, feature_set=config.feature_set,
                           venue=config.venue, symbol=config.symbol, levels=config.levels,
                           fee_bps=config.fee_bps)
    data = without_short_clock(data, train_ns)
    usable = usable_rows(data)
    window_ns = input_window_ns(data, config)
    starts = range(int(data.ts[0]), int(data.ts[-1]) - train_ns, step_ns)
    blocks: list[dict[str, Any]] = []
    skipped: list[dict[str, str]] = []  # blocks that could not be scored, and why
    pooled: dict[str, list[Any]] = {name: [] for name in ("model", *BASELINES)}
    pooled_rows: list[np.ndarray] = []
    iterator: Any = starts
    if progress:
        from bookcast.terminal import progress as progress_bar

        iterator = progress_bar(starts, "walk-forward", unit="blocks")
    for start in iterator:
        splits = window_splits(data.ts, usable, start, train_ns, step_ns, data.horizon_ns,
                               window_ns)
        if splits is None or len(splits.train) < MIN_TRAIN_ROWS:
            skipped.append({"train_start": _iso(start), "reason": (
                "no usable rows in its train, validation or test part" if splits is None
                else f"{len(splits.train)} training rows, fewer than {MIN_TRAIN_ROWS}")})
            continue
        try:
            used, _, results = fit_and_score(data, splits, config)
        except UserError as exc:  # e.g. no complete DeepLOB window, a class missing
            skipped.append({"train_start": _iso(start), "reason": str(exc)})
            continue
        block = {"train_start": _iso(start), "test_start": _iso(int(data.ts[used.test[0]])),
                 "test_end": _iso(int(data.ts[used.test[-1]])), "test_rows": len(used.test)}
        for name, scored in results.items():
            block[name] = {"macro_f1": scored.test["macro_f1"],
                           "val_macro_f1": scored.validation["macro_f1"],
                           "n_trades": scored.test["n_trades"],
                           "net_pnl_bps": scored.test["net_pnl_bps"]}
            pooled[name].append((scored.proba_test, scored.signal_test,
                                 scored.classification_test))
        pooled_rows.append(used.test)
        blocks.append(block)
    if not blocks:
        span = format_duration_ns(int(data.ts[-1] - data.ts[0]))
        raise UserError(f"No walk-forward block fits: the data spans {span}, the train "
                        f"window is {format_duration_ns(train_ns)} plus a "
                        f"{format_duration_ns(step_ns)} step; shorten --train-window.")
    rows = np.concatenate(pooled_rows)
    long_net, short_net = execution_trips(data, config.latency_ns).net(data.fee_bps)
    aggregate = {}
    for name, parts in pooled.items():
        signal = np.concatenate([s for _, s, _ in parts])
        by_class = np.concatenate([c for _, _, c in parts])
        aggregate[name] = policy_report(data.y[rows], by_class, signal, long_net[rows],
                                        short_net[rows])
    summary = {"model": config.model, "fee_bps": data.fee_bps, "blocks": blocks,
               "skipped_blocks": skipped,
               "aggregate": aggregate,
               "macro_f1": aggregate["model"]["macro_f1"],
               "baselines": {b: aggregate[b] for b in BASELINES},
               "beats_baselines": {"aggregate_macro_f1": aggregate["model"]["macro_f1"] > max(
                   aggregate[b]["macro_f1"] for b in BASELINES)},
               "n_trades": aggregate["model"]["n_trades"],
               "net_pnl_bps": aggregate["model"]["net_pnl_bps"]}

    run_id = new_run_id(config).replace(f"-{config.model}-", f"-walkforward-{config.model}-")
    final = runs_dir(root) / run_id
    tmp = runs_dir(root) / f".tmp-{run_id}"
    tmp.mkdir(parents=True)
    try:
        _write_json(tmp / "run.json", {
            "run_id": run_id, "kind": "walkforward", "model": config.model,
            "horizon": format_duration_ns(data.horizon_ns), "horizon_ns": data.horizon_ns,
            "feature_set": data.feature_set, "venue": data.venue, "symbol": data.symbol,
            "fee_bps": data.fee_bps, "feature_names": data.feature_names,
            "latency_ns": (config.latency_ns if config.latency_ns is not None
                           else data.interval_ns),
            "train_window": format_duration_ns(train_ns), "step": format_duration_ns(step_ns),
            "data_range": {"first": _iso(int(data.ts[0])), "last": _iso(int(data.ts[-1]))},
            "splits": {"blocks": [{k: b[k] for k in ("train_start", "test_start", "test_end")}
                                  for b in blocks]},
            "dataset_fingerprint": data.fingerprint, "code_version": code_version(),
            "config": config.to_dict(),
            "created_at": dt.datetime.now(dt.UTC).isoformat(timespec="seconds")})
        _write_json(tmp / "metrics.json", summary)
        proba = np.concatenate([p for p, _, _ in pooled["model"]])
        signal = np.concatenate([s for _, s, _ in pooled["model"]])
        by_class = np.concatenate([c for _, _, c in pooled["model"]])
        prediction_frame(data, rows, proba, signal, by_class).write_parquet(
            tmp / "predictions.parquet")
        os.replace(tmp, final)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return final, summary
