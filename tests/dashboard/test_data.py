"""The dashboard's queries against the files the pipeline wrote, checked by direct reads."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import polars as pl
import pytest

from bookcast.paths import path_safe
from dashboard import data, health

SECOND = 1_000_000_000


def snapshots_of(root: Path, symbol: str) -> pl.DataFrame:
    files = sorted((root / "snapshots" / "venue=binance-spot" / f"symbol={path_safe(symbol)}")
                   .glob("date=*/*.parquet"))
    return pl.read_parquet(files)


def test_coverage_counts_rows_gaps_and_range_per_day(pipeline_root):
    cover = data.coverage(str(pipeline_root), data.files_stamp(pipeline_root / "snapshots"))
    btc = snapshots_of(pipeline_root, "BTCUSDT")
    mine = cover.filter(pl.col("symbol") == "BTCUSDT")
    assert int(mine["rows"].sum()) == btc.height
    assert int(mine["gap_rows"].sum()) == int(btc["gap"].sum())
    assert mine["first_ts"].min() == btc["ts"].min() and mine["last_ts"].max() == btc["ts"].max()
    assert set(mine["interval"]) == {"1s"}
    assert (mine["missing_grid_points"] >= 0).all()


def test_book_window_reads_only_the_window_and_the_levels_asked(pipeline_root):
    btc = snapshots_of(pipeline_root, "BTCUSDT")
    t0 = btc["ts"].dt.epoch("ns")[100]
    root = str(pipeline_root)
    window = data.book_window(root, "binance-spot", "BTCUSDT", t0, t0 + 60 * SECOND, 7,
                              data.market_stamp(root, "binance-spot", "BTCUSDT"))
    expected = btc.filter(pl.col("ts").dt.epoch("ns").is_between(t0, t0 + 60 * SECOND))
    assert window.height == expected.height == 61
    assert window["bid_px"].list.len().max() == 7
    assert window["bid_px"].to_list() == expected["bid_px"].list.head(7).to_list()


def test_book_window_across_midnight_reads_both_dates(pipeline_root):
    btc = snapshots_of(pipeline_root, "BTCUSDT")
    midnight = 1_723_161_600 * SECOND  # 2024-08-09 00:00 UTC, inside the capture
    root = str(pipeline_root)
    window = data.book_window(root, "binance-spot", "BTCUSDT", midnight - 30 * SECOND,
                              midnight + 30 * SECOND, 1, (0, 0))
    assert window.height == btc.filter(pl.col("ts").dt.epoch("ns").is_between(
        midnight - 30 * SECOND, midnight + 30 * SECOND)).height == 61


def test_imbalance_response_matches_a_direct_group_by(pipeline_root):
    root = str(pipeline_root)
    bins = data.imbalance_response(root, "compact", "binance-spot", "BTCUSDT", "imb_1",
                                   ("5s",), 4, (0, 0))
    files = sorted((pipeline_root / "features" / "compact").glob(
        "venue=binance-spot/symbol=BTCUSDT/date=*/*.parquet"))
    raw = pl.read_parquet(files).select("imb_1", "fwd_ret_5s").drop_nulls()
    x, r = raw["imb_1"].to_numpy(), raw["fwd_ret_5s"].to_numpy() * 1e4
    b = np.clip(np.floor((x + 1) / 0.5).astype(int), 0, 3)
    for row in bins.iter_rows(named=True):
        mine = r[b == row["bin"]]
        assert row["n"] == mine.size
        assert row["mean_bps"] == pytest.approx(mine.mean())
        assert row["se_bps"] == pytest.approx(mine.std(ddof=1) / np.sqrt(mine.size), nan_ok=True)
    assert bins["n"].sum() == x.size


def test_net_pnl_at_the_charged_fee_is_the_stored_net(pipeline_root):
    backtest_id = data.backtest_ids(str(pipeline_root))[0]
    stats = json.loads((pipeline_root / "backtests" / backtest_id / "stats.json").read_text())
    assert data.net_pnl_at_fee(stats, 0.0) == pytest.approx(stats["net_pnl"])  # the charged fee
    assert data.net_pnl_at_fee(stats, 2.0) == pytest.approx(
        stats["net_pnl"] - 2e-4 * stats["traded_value"])  # 2 bps per side more
    assert data.net_pnl_at_fee({"n_trades": 0}, 1.0) is None


def test_collector_health_reads_the_daemon_metrics_names(unused_tcp_port_server):
    url = unused_tcp_port_server
    report = health.collector_health(url)
    assert report.reachable, report.error
    table = health.health_by_symbol(report.samples)
    row = table.filter(pl.col("symbol") == "BTCUSDT").row(0, named=True)
    assert row["bookcast_book_valid"] == 1.0 and row["bookcast_gaps"] == 2.0


def test_collector_health_says_unreachable_when_nothing_listens():
    report = health.collector_health("http://127.0.0.1:9/metrics", timeout_s=0.5)
    assert not report.reachable and report.samples.is_empty()


@pytest.fixture
def unused_tcp_port_server():
    """A Prometheus endpoint with the daemon's metric names (collector/daemon/metrics.py)."""
    from prometheus_client import CollectorRegistry, Counter, Gauge, start_http_server

    from collector.daemon.metrics import SYMBOL_COUNTERS

    registry = CollectorRegistry()
    valid = Gauge("bookcast_book_valid", "1 while the book is synchronised.",
                  ["venue", "symbol"], registry=registry)
    valid.labels("binance-spot", "BTCUSDT").set(1)
    gaps = Counter("bookcast_gaps", SYMBOL_COUNTERS["bookcast_gaps"][0], ["venue", "symbol"],
                   registry=registry)
    gaps.labels("binance-spot", "BTCUSDT").inc(2)
    server, thread = start_http_server(0, addr="127.0.0.1", registry=registry)
    try:
        yield f"http://127.0.0.1:{server.server_port}/metrics"
    finally:
        server.shutdown()
        thread.join(timeout=5)


def run_command(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "bookcast", "dashboard", *args],
                          capture_output=True, text=True, timeout=60)


def test_command_rejects_a_missing_data_dir_in_one_sentence(tmp_path):
    done = run_command("--data-dir", str(tmp_path / "nowhere"), "--port", "8599")
    assert done.returncode == 2
    assert "does not exist" in done.stderr and "Traceback" not in done.stderr


def test_command_rejects_a_port_in_use(tmp_path):
    import socket

    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        done = run_command("--data-dir", str(tmp_path), "--port", str(busy.getsockname()[1]))
    assert done.returncode == 2 and "already in use" in done.stderr


def test_runs_side_by_side_carry_ranking_skill_beside_the_trading_rule(pipeline_root):
    root = str(pipeline_root)
    run_ids = [p.parent.name for p in (pipeline_root / "runs").glob("*/run.json")]
    runs = {r: data.load_run(root, r).metrics for r in run_ids}
    table = data.metrics_table(runs)
    assert {"ap_up", "ap_down", "base_rate_up", "base_rate_down"} <= set(table.columns)
    always_flat = table.filter(table["estimator"] == "always_flat")
    # a constant forecast ranks nothing: its average precision is the base rate itself
    for side in ("up", "down"):
        pairs = always_flat.select(f"ap_{side}", f"base_rate_{side}").drop_nulls().rows()
        assert pairs and all(abs(ap - base) < 1e-9 for ap, base in pairs)
