"""The dashboard answers the product's question: the fee x horizon verdict, one sentence on
whether the backtest made money, red coverage only over real holes."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import polars as pl
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from bookcast.timeutil import parse_duration_ns
from tests.dashboard.test_app import charts, open_page, rerun, values

BOOKCAST = str(Path(sys.executable).parent / "bookcast")


def write_verdict(root: Path) -> list[dict]:
    """reports/verdict.json as `bookcast verdict` writes it for the root's trained runs
    (the real command, so the page is tested against the schema the product writes)."""
    proc = subprocess.run([BOOKCAST, "verdict", "--data-dir", str(root), "--json"],
                          capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr
    rows = json.loads(proc.stdout)["rows"]
    assert json.loads((root / "reports" / "verdict.json").read_text())["rows"] == rows
    return rows


def test_backtest_page_shows_the_fee_by_horizon_verdict(pipeline_root, copy_of, data_root_env):
    root = data_root_env(copy_of(pipeline_root))
    at = open_page("backtest")
    assert any("bookcast verdict" in c.value for c in at.code)  # not written yet: say how
    rows = write_verdict(root)
    at = rerun(open_page("backtest"))
    model = at.selectbox(key="verdict_strategy").value
    assert model == "logistic"  # the trained model comes before the comparison rows
    expected = {(r["horizon"], r["fee_bps"]): r for r in rows
                if r["strategy"] == model and r["execution"] == "taker"}
    fees = sorted({f for _, f in expected})
    horizons = sorted({h for h, _ in expected}, key=parse_duration_ns)
    heat = charts(at)["verdict_chart"]["data"][0]
    assert heat["type"] == "heatmap"
    assert list(heat["x"]) == [f"{f:g}" for f in fees] and list(heat["y"]) == horizons
    assert len(fees) >= 6  # 0, 1, 2, 5, 7.5, 10 bps and the venue's presets
    z = values(heat["z"]).astype(float).reshape(len(horizons), len(fees))
    for i, h in enumerate(horizons):
        for j, f in enumerate(fees):
            row = expected[(h, f)]
            net = row["net_bps_per_trade"]
            assert (np.isnan(z[i, j]) if net is None else z[i, j] == pytest.approx(net))
            assert f"{row['verdict']}<br>{row['n_trades']} trades" == heat["text"][i][j]
    words = [r["verdict"] for r in expected.values()]
    if "pays" in words:
        assert any(f"pays after costs in {words.count('pays')} of {len(expected)}" in s.value
                   for s in at.success)
    else:
        assert any(f"pays in none of the {len(expected)} fee × horizon cells: it loses in "
                   f"{words.count('loses')}, {words.count('inconclusive')} are inconclusive"
                   in w.value for w in at.warning)
    # 11 minutes of test data is below the minimum sample: no comparison row can pay.
    random_row = next(r["strategy"] for r in rows if r["strategy"].startswith("random"))
    at.selectbox(key="verdict_strategy").set_value(random_row)
    rerun(at)
    assert any("pays in none of the" in w.value for w in at.warning)


def test_backtest_page_opens_on_the_backtest_that_traded_and_says_if_it_paid(
        pipeline_root, copy_of, data_root_env):
    root = data_root_env(copy_of(pipeline_root))
    source = next(p for p in (root / "runs").iterdir() if (p / "run.json").exists())
    # A run whose model always says "flat", named to sort first (newest): its backtest,
    # made by the real engine, never trades.
    idle_run = root / "runs" / "29991231T000000Z-always-flat"
    shutil.copytree(source, idle_run)
    meta = json.loads((idle_run / "run.json").read_text())
    (idle_run / "run.json").write_text(json.dumps({**meta, "run_id": idle_run.name}))
    predictions = pl.read_parquet(idle_run / "predictions.parquet")
    predictions.with_columns(p_down=0.0, p_flat=1.0, p_up=0.0,
                             signal=pl.lit(0, pl.Int8)).write_parquet(
        idle_run / "predictions.parquet")
    proc = subprocess.run([BOOKCAST, "backtest", "--run", idle_run.name, "--data-dir",
                           str(root), "--fee-bps", "1", "--json"],
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr
    idle = json.loads(proc.stdout)
    assert idle["stats"]["n_trades"] == 0
    at = open_page("backtest")
    chosen = at.selectbox(key="backtest_id").value
    assert at.selectbox(key="backtest_id").options[0] == idle["backtest_id"]  # the newest
    assert chosen != idle["backtest_id"]
    stats = json.loads((root / "backtests" / chosen / "stats.json").read_text())
    sentences = [m.value for m in (*at.success, *at.warning) if "After spread and fees" in m.value]
    assert len(sentences) == 1
    verb = "made" if stats["net_pnl"] > 0 else "lost"
    assert f"the model {verb} {abs(stats['net_pnl']):,.2f} USDT over {stats['n_trades']}" \
        in sentences[0]
    at.selectbox(key="backtest_id").set_value(idle["backtest_id"])
    rerun(at)
    assert any("made no trades" in w.value for w in at.warning)
    shown = [m.value for m in at.metric]
    assert "-0" not in shown and "None" not in shown


def cut_rows(path: Path, start: int, stop: int) -> tuple[int, int]:
    """Remove rows [start, stop) of a snapshots file, keeping its metadata; returns the
    grid times (ns) of the rows either side of the hole."""
    table = pq.read_table(path)
    new = pa.concat_tables([table.slice(0, start), table.slice(stop)])
    pq.write_table(new.replace_schema_metadata(table.schema.metadata), path)
    ts = table.column("ts").cast(pa.int64()).to_pylist()
    return ts[start - 1], ts[stop]


def test_coverage_is_red_only_over_grid_points_without_a_row(pipeline_root, copy_of,
                                                              data_root_env):
    data_root_env(pipeline_root)
    figure = charts(open_page(None))["coverage_chart"]
    # one resynchronisation row at the start of each capture is not a hole
    assert {t["line"]["color"] for t in figure["data"]} == {"#16a34a"}
    root = data_root_env(copy_of(pipeline_root))
    part = next((root / "snapshots" / "venue=binance-spot" / "symbol=BTCUSDT"
                 / "date=2024-08-09").glob("*.parquet"))
    before, after = cut_rows(part, 100, 130)
    figure = charts(open_page(None))["coverage_chart"]
    red = [t for t in figure["data"] if t["line"]["color"] == "#dc2626"]
    assert len(red) == 1 and set(red[0]["y"]) == {"binance-spot BTCUSDT"}
    span = values(red[0]["x"])
    assert [np.datetime64(v, "ns").astype(np.int64) for v in span] == [before, after]
    assert "30 grid points without a row" in red[0]["hovertext"]
