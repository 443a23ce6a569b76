"""Runs: what a run directory holds, predict reproduces it, listing, immutability, the
other models end to end, walk-forward, and user errors at the command line."""

from __future__ import annotations

import datetime as dt
import json
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import polars as pl
import pytest
from book_fixture import NS

from bookcast.errors import UserError
from bookcast.schema import PREDICTION_COLUMNS
from models.config import TrainConfig
from models.runs import find_run, list_runs, predict_with_run, train_run
from models.walkforward import walk_forward


def test_a_run_holds_model_config_metrics_predictions_and_plots(lightgbm_run):
    names = {p.name for p in lightgbm_run.iterdir()}
    assert {"model.pkl", "run.json", "metrics.json", "normalisation.json",
            "predictions.parquet", "confusion.png", "pr_curves.png",
            "calibration.png"} <= names
    run = json.loads((lightgbm_run / "run.json").read_text())
    for key in ("run_id", "model", "horizon", "horizon_ns", "feature_set", "venue", "symbol",
                "fee_bps", "feature_names", "data_range", "dataset_fingerprint",
                "code_version", "device", "config", "splits"):
        assert key in run, key
    assert run["horizon"] == "10s" and run["horizon_ns"] == 10 * NS
    metrics = json.loads((lightgbm_run / "metrics.json").read_text())
    assert set(metrics["baselines"]) == {"always_flat", "imbalance_rule", "logistic_imbalance"}
    for report in (metrics, *metrics["baselines"].values()):
        assert 0.0 <= report["macro_f1"] <= 1.0
        assert set(report["per_class"]) == {"down", "flat", "up"}
        assert {"break_even_precision", "achieved_precision"} <= set(report["break_even"]["up"])
    assert "verdict" in metrics
    preds = pl.read_parquet(lightgbm_run / "predictions.parquet")
    assert tuple(preds.columns[:7]) == PREDICTION_COLUMNS
    test = run["splits"]["test"]
    ts = preds["ts"].dt.epoch("ns")
    assert ts.min() == test["first_ts"] and ts.max() == test["last_ts"]
    assert len(preds) == test["rows"]


def test_predict_reproduces_the_runs_test_predictions(tmp_path, book_data_dir, lightgbm_run):
    out, report = predict_with_run(lightgbm_run.name, book_data_dir, tmp_path / "p.parquet")
    assert report is not None
    stored = pl.read_parquet(lightgbm_run / "predictions.parquet")
    fresh = pl.read_parquet(out).join(stored.select("ts"), on="ts", how="semi").sort("ts")
    np.testing.assert_allclose(fresh["p_up"].to_numpy(), stored.sort("ts")["p_up"].to_numpy())
    assert (fresh["signal"] == stored.sort("ts")["signal"]).all()


def test_runs_are_listed_and_immutable(book_data_dir, lightgbm_run):
    rows = {r["run_id"]: r for r in list_runs(book_data_dir)}
    assert rows["lightgbm-fixture"]["model"] == "lightgbm"
    with pytest.raises(UserError, match="already exists"):
        train_run(book_data_dir, TrainConfig(model="logistic", feature_set="compact", window=20),
                  run_id="lightgbm-fixture")
    with pytest.raises(UserError, match="Unknown run"):
        find_run(book_data_dir, "no-such-run")


def test_deeplob_trains_end_to_end_on_book_windows(book_data_dir):
    config = TrainConfig(model="deeplob", feature_set="compact", window=20, epochs=1,
                         batch_size=64, max_train_rows=192)
    run_dir = train_run(book_data_dir, config, run_id="deeplob-tiny")
    run = json.loads((run_dir / "run.json").read_text())
    assert run["input_kind"] == "sequence" and (run_dir / "model.pt").exists()
    assert not list((book_data_dir / "runs" / ".checkpoints").glob("*.pt"))  # cleaned up
    _, report = predict_with_run(run_dir.name, book_data_dir, run_dir.parent / "dl.parquet")
    assert report is not None


def test_walk_forward_reports_every_block_and_the_aggregate(book_data_dir):
    config = TrainConfig(model="logistic", feature_set="compact", window=20)
    run_dir, summary = walk_forward(book_data_dir, config, 20 * 60 * NS, 5 * 60 * NS)
    assert len(summary["blocks"]) >= 3
    assert set(summary["aggregate"]) == {"model", "always_flat", "imbalance_rule",
                                         "logistic_imbalance"}
    starts = [b["test_start"] for b in summary["blocks"]]
    assert starts == sorted(starts)
    assert (run_dir / "predictions.parquet").exists()
    # every block is either scored or listed with its reason: none disappears silently
    data_range = json.loads((run_dir / "run.json").read_text())["data_range"]
    first, last = (int(dt.datetime.fromisoformat(data_range[k]).timestamp() * 1e3)
                   for k in ("first", "last"))  # ms, as stored
    train_ms, step_ms = 20 * 60 * 1000, 5 * 60 * 1000
    assert len(summary["blocks"]) + len(summary["skipped_blocks"]) == len(
        range(first, last - train_ms, step_ms))
    assert all(b["reason"] for b in summary["skipped_blocks"])


def test_walk_forward_says_which_blocks_it_could_not_score(book_data_dir):
    """DeepLOB needs a complete 150-snapshot input window in every split: the block whose
    split meets the fixture's gap has none, so it is skipped and named, and the aggregate
    pools the others (a silent skip was what walkforward did before)."""
    proc = subprocess.run([sys.executable, "-c", "from bookcast.cli import main; main()",
                           "walkforward", "--data-dir", str(book_data_dir), "--model",
                           "deeplob", "--set", "compact", "--horizon", "10s", "--window",
                           "150", "--epochs", "1", "--train-window", "20m", "--step", "10m"],
                          capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-2000:]
    out = " ".join(proc.stdout.split())
    assert "skipped: the block training from" in out and "150-snapshot window" in out, out
    assert re.search(r"\b[1-9]\d* of \d+ blocks were skipped", out), out


@pytest.mark.parametrize("args, message", [
    (["train", "--model", "xgboost"], "Unknown model 'xgboost'"),
    (["train", "--model", "lightgbm"], "No features dataset"),
])
def test_user_mistakes_end_in_one_sentence_and_exit_2(tmp_path, args, message):
    proc = subprocess.run([sys.executable, "-c", "from bookcast.cli import main; main()",
                           *args, "--data-dir", str(tmp_path)],
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 2
    assert message in proc.stderr and "Traceback" not in proc.stderr


def test_runs_prints_whole_run_ids_in_100_columns(book_data_dir, lightgbm_run):
    import os

    proc = subprocess.run([str(Path(sys.executable).parent / "bookcast"), "runs",
                           "--data-dir", str(book_data_dir)], capture_output=True, text=True,
                          timeout=120, env={**os.environ, "COLUMNS": "100"})
    assert proc.returncode == 0, proc.stderr[-2000:]
    lines = proc.stdout.splitlines()
    assert all(len(line) <= 100 and "…" not in line for line in lines)
    for run_id in (r["run_id"] for r in list_runs(book_data_dir)):
        assert any(run_id in line.split() for line in lines), run_id
    assert "(bps)" in proc.stdout and "(bps" in proc.stdout.split("net", 1)[1]
