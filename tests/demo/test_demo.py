"""`bookcast demo` end to end in a reduced size: every artefact it promises is left behind."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import polars as pl
import pyarrow.parquet as pq

BOOKCAST = str(Path(sys.executable).parent / "bookcast")


def test_reduced_demo_leaves_every_artefact_and_prints_the_verdict(tmp_path):
    data = tmp_path / "demo"
    proc = subprocess.run(
        [BOOKCAST, "demo", "--data-dir", str(data), "--hours", "0.3", "--live-seconds", "6",
         "--models", "lightgbm,deeplob", "--deeplob-epochs", "1"],
        capture_output=True, text=True, timeout=600, env={**os.environ, "COLUMNS": "100"})
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    out = proc.stdout

    # captures from the simulator, in the venue's own protocol
    captures = sorted((data / "captures" / "binance-spot").glob("*.jsonl.gz"))
    assert [c.name.split("_")[0] for c in captures] == ["btcusdt", "ethusdt"]

    # the live daemon wrote Parquet and a raw capture, and its replay matched
    live = data / "live"
    assert list((live / "snapshots").rglob("*.parquet"))
    assert list((live / "raw").rglob("*.jsonl.zst"))
    assert "row for row" in out and "SIGTERM: the daemon flushed and exited 0" in out

    # replayed snapshots and trades for both symbols
    snaps = pl.read_parquet(data / "snapshots", hive_partitioning=True)
    assert set(snaps["symbol"].unique()) == {"BTCUSDT", "ETHUSDT"}
    assert snaps.height >= 2 * 500
    assert pl.read_parquet(data / "trades", hive_partitioning=True).height > 0

    # features with fee-aware labels, and the opportunity report
    feats = pl.read_parquet(data / "features" / "default" / "**" / "*.parquet",
                            hive_partitioning=True)
    assert {"fwd_ret_10s", "y_10s"} <= set(feats.columns)
    assert set(feats["y_10s"].drop_nulls().unique()) <= {-1, 0, 1}
    assert pq.read_table(data / "reports" / "opportunities.parquet").num_rows > 0
    assert "opportunities after spread and fees" in out

    # one run per (symbol, model) at 10 s, LightGBM also at the other horizons; every run
    # with metrics for the model and every baseline, at the demo's one fee
    runs = sorted(r for r in (data / "runs").iterdir() if not r.name.startswith("."))
    infos = [json.loads((r / "run.json").read_text()) for r in runs]
    at_10s = sorted(i["model"] for i in infos if i["horizon"] == "10s")
    assert at_10s == ["deeplob", "deeplob", "lightgbm", "lightgbm"]
    assert {i["horizon"] for i in infos if i["model"] == "lightgbm"} >= {"1s", "5s", "10s"}
    assert {i["fee_bps"] for i in infos} == {1.0}
    for run in runs:
        metrics = json.loads((run / "metrics.json").read_text())
        assert 0.0 <= metrics["macro_f1"] <= 1.0 and metrics["fee_bps"] == 1.0
        assert {"always_flat", "imbalance_rule", "logistic_imbalance"} <= set(metrics["baselines"])
        assert (run / "predictions.parquet").exists()

    # one backtest per 10 s run, at the run's own fee, with the cost decomposition and the
    # comparison rows
    backtests = sorted(b for b in (data / "backtests").iterdir() if not b.name.startswith("."))
    assert len(backtests) == len(at_10s)
    for bt in backtests:
        stats = json.loads((bt / "stats.json").read_text())
        config = json.loads((bt / "config.json").read_text())
        assert config["fee_bps"] == config["run_fee_bps"] == 1.0
        for key in ("n_trades", "gross_pnl_mid", "spread_cost", "fees", "net_pnl",
                    "break_even_fee_bps", "net_pnl_per_trade_ci95", "verdict"):
            assert key in stats
        assert abs(stats["net_pnl"] - (stats["gross_pnl_mid"] - stats["spread_cost"]
                                       - stats["fees"])) < 1e-6
        assert {"random", "oracle"} <= set(stats["baselines"])

    # the verdict: reports/verdict.json and the heat-map, and the table, whole in 100 columns
    report = json.loads((data / "reports" / "verdict.json").read_text())
    keys = ["symbol", "strategy", "horizon", "fee_bps", "execution", "n_trades",
            "net_bps_per_trade", "ci95", "break_even_fee_bps", "verdict"]
    assert report["rows"] and all(list(r) == keys for r in report["rows"])
    assert {r["verdict"] for r in report["rows"]} <= {"pays", "loses", "inconclusive",
                                                       "no trades"}
    strategies = {r["strategy"] for r in report["rows"]}
    assert {"lightgbm", "deeplob", "random (lightgbm)", "imbalance rule", "oracle"} <= strategies
    assert {r["execution"] for r in report["rows"]} == {"taker", "maker"}
    assert {0.0, 1.0, 2.0, 5.0, 7.5, 10.0} <= {r["fee_bps"] for r in report["rows"]}
    assert (data / "reports" / "verdict.png").stat().st_size > 10_000
    step = out.index("same as: bookcast verdict")
    verdict = out[out.index("\n", step):out.index("Look at it:")]
    assert "Marks: P pays" in verdict and "oracle" in verdict
    for line in verdict.splitlines():
        assert len(line) <= 100 and "…" not in line, line
    assert "bookcast dashboard --data-dir" in out
    # where the time went, every step named with its seconds
    per_step = out[out.index("per step:"):]
    for name in ("data", "live", "replay", "features", "opportunities", "train", "backtest",
                 "verdict"):
        assert re.search(rf"\b{name} \d+ s\b", per_step), (name, per_step)
