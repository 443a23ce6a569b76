"""`build_features`, `bookcast features/opportunities/sql`, and the real Binance capture."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import polars as pl
import pyarrow.parquet as pq
import pytest
import typer
from typer.testing import CliRunner

from bookcast.errors import UserError
from bookcast.fees import fee_preset
from features.build import build_features
from features.cli import register
from features.opportunities import opportunity_table, report_path
from features.sql import run_sql

S = 1_000_000_000
PROJECT = Path(__file__).resolve().parents[2]


@pytest.fixture()
def small_data(tmp_path, books):
    books.write_snapshots(tmp_path, books.flat_rows(40, gaps=(0, 25)))
    books.write_trades(tmp_path, [(books.T0 + i * S // 2, 100.0, 0.1, 1 - 2 * (i % 2))
                                  for i in range(80)])
    return tmp_path


def test_build_writes_partitions_and_the_full_configuration(small_data):
    written = build_features(small_data, "compact", [S, 5 * S], fee_preset="binance-spot-bnb")
    (path,) = written
    assert path.parent == small_data / "features/compact/venue=binance-spot/symbol=BTCUSDT/date=2024-08-09"
    frame = pl.read_parquet(path)
    assert frame.height == 40 and frame["ts"].is_sorted()
    assert {"mid", "spread", "best_bid", "best_ask", "microprice", "fwd_ret_1s", "y_5s"} <= set(
        frame.columns)
    assert frame.schema["y_1s"] == pl.Int8 and frame.schema["fwd_ret_5s"] == pl.Float64
    meta = pq.read_schema(path).metadata
    assert meta[b"venue"] == b"binance-spot" and meta[b"fee_bps"] == b"7.5"
    config = json.loads((small_data / "features/compact/config.json").read_text())
    assert config["horizons"] == ["1s", "5s"]
    assert config["fee_bps"] == fee_preset("binance-spot-bnb").taker_bps
    assert config["features"][:3] == ["best_bid", "best_ask", "best_bid_sz"]
    assert config["source"]["partitions"][0]["rows"] == 40
    assert not list(path.parent.glob("*.tmp"))


def test_rebuilding_replaces_the_partition_instead_of_adding_files(small_data):
    build_features(small_data, "compact", [S], fee_bps=0.0)
    build_features(small_data, "compact", [S], fee_bps=5.0)
    files = list((small_data / "features/compact").rglob("*.parquet"))
    assert len(files) == 1


def test_user_mistakes_are_one_sentence_errors(tmp_path, small_data):
    with pytest.raises(UserError, match="bookcast replay"):
        build_features(tmp_path / "empty", "default")
    with pytest.raises(UserError, match="Unknown feature set"):
        build_features(small_data, "nope")
    with pytest.raises(UserError, match="negative"):
        build_features(small_data, "compact", [S], fee_bps=-1.0)
    with pytest.raises(UserError, match="multiple of the snapshot interval"):
        build_features(small_data, "compact", [S // 2])


def test_sql_views_read_every_dataset_and_name_the_missing_one(small_data):
    with pytest.raises(UserError, match="bookcast features --data-dir"):
        run_sql("SELECT count(*) FROM features", small_data)
    build_features(small_data, "compact", [S], fee_bps=0.0)
    _, rows = run_sql("SELECT count(*), min(venue), min(symbol) FROM snapshots", small_data)
    assert rows == [(40, "binance-spot", "BTCUSDT")]
    _, rows = run_sql("SELECT count(*) FROM trades", small_data)
    assert rows == [(80,)]
    columns, rows = run_sql("SELECT count(y_1s) AS labelled FROM features", small_data, "compact")
    assert columns == ["labelled"] and rows == [(38,)]  # the last row and the row before the gap
    with pytest.raises(UserError, match="query cannot be parsed"):
        run_sql("SELEC 1", small_data)


def feature_commands() -> typer.Typer:
    app = typer.Typer()
    register(app)
    return app


def test_commands_raise_a_one_sentence_user_error_on_an_empty_data_dir(tmp_path):
    for args in (["opportunities"], ["features"], ["sql", "SELECT 1 FROM snapshots"]):
        result = CliRunner().invoke(feature_commands(), [*args, "--data-dir", str(tmp_path)])
        assert isinstance(result.exception, UserError), args
        assert str(tmp_path) in str(result.exception)


# ---------------------------------------------------------------- the real Binance capture


def direct_opportunities(root: Path, h: int, fee_bps: float) -> tuple[int, int, int, float]:
    """Rows, long wins, short wins, sum |move| bps: a plain loop over each partition's rows."""
    rows = longs = shorts = 0
    moves = 0.0
    for part in sorted((root / "snapshots").rglob("*.parquet")):
        table = pq.read_table(part)
        t = table.to_pydict()
        ts = table.column("ts").cast("int64").to_pylist()
        for i in range(len(ts)):
            j = i + h
            if j >= len(ts) or ts[j] != ts[i] + h * S or any(t["gap"][i + 1:j + 1]):
                continue
            bid, ask = t["bid_px"][i][0], t["ask_px"][i][0]
            bid_h, ask_h = t["bid_px"][j][0], t["ask_px"][j][0]
            rows += 1
            mid, mid_h = (bid + ask) / 2, (bid_h + ask_h) / 2
            moves += abs(mid_h / mid - 1) * 1e4
            if bid_h / ask - 1 > 2 * fee_bps * 1e-4:
                longs += 1
            elif 1 - ask_h / bid > 2 * fee_bps * 1e-4:
                shorts += 1
    return rows, longs, shorts, moves


def test_opportunities_on_real_binance_match_a_direct_recomputation(binance_btc):
    fees = [0.0, 1.0, 10.0]
    table = opportunity_table(binance_btc, [S, 10 * S], fees)
    assert table.height == 6
    for r in table.iter_rows(named=True):
        rows, longs, shorts, moves = direct_opportunities(binance_btc, r["horizon_ns"] // S,
                                                          r["fee_bps"])
        assert r["rows"] == rows > 500
        assert r["share_long"] == pytest.approx(longs / rows)
        assert r["share_short"] == pytest.approx(shorts / rows)
        assert r["mean_abs_move_bps"] == pytest.approx(moves / rows)
        assert r["round_trip_cost_bps"] == pytest.approx(r["mean_spread_bps"] + 2 * r["fee_bps"])
    # BTCUSDT trades at a one-cent spread: at 10 bps a side a 1 s move never pays
    assert table.filter((pl.col("horizon") == "1s") & (pl.col("fee_bps") == 10.0))[
        "share_either"][0] == 0.0


def test_opportunities_command_saves_the_report_for_the_dashboard(binance_btc):
    result = CliRunner().invoke(feature_commands(), [
        "opportunities", "--data-dir", str(binance_btc), "--horizons", "1s,10s",
        "--fee-bps", "0,2"], terminal_width=200)
    assert result.exit_code == 0, result.output
    saved = pl.read_parquet(report_path(binance_btc))
    assert saved.height == 4
    assert saved.columns[:5] == ["venue", "symbol", "horizon", "horizon_ns", "fee_bps"]
    assert "opportunities after spread and fees" in result.output


def test_features_on_real_binance_agree_with_the_opportunity_report(binance_btc):
    build_features(binance_btc, "default", [10 * S], fee_bps=1.0)
    frame = pl.read_parquet(binance_btc / "features/default/**/*.parquet",
                            hive_partitioning=True)
    labelled = frame["y_10s"].drop_nulls()
    report = opportunity_table(binance_btc, [10 * S], [1.0]).row(0, named=True)
    assert labelled.len() == report["rows"]
    assert (labelled == 1).sum() / labelled.len() == pytest.approx(report["share_long"])
    finite = frame.select(pl.exclude("ts", "venue", "symbol", "date")).to_numpy()
    assert not np.isinf(finite[~np.isnan(finite)]).any()
    assert frame["microprice"].null_count() == 0
