"""`bookcast verdict`: the rows, the file, the heat-map, and figures that agree with the
backtester and with a plain recomputation."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from backtest import BacktestConfig, backtest_run
from backtest.data import load_book
from backtest.verdict import ROW_KEYS, fee_levels, run_verdict
from models.runs import read_run

BOOKCAST = str(Path(sys.executable).parent / "bookcast")
SECOND = 1_000_000_000
FEES = fee_levels("binance-spot")


NOTIONAL = 1.0  # 0.01 units at price 100: inside the touch of the fixture's thin book


@pytest.fixture(scope="module")
def verdict(trained_root):
    return run_verdict(trained_root, notional=NOTIONAL)


def rows_where(report, **match) -> list[dict]:
    return [r for r in report.rows if all(r[k] == v for k, v in match.items())]


def test_one_row_per_symbol_strategy_horizon_fee_and_execution(verdict):
    assert FEES == [0.0, 1.0, 2.0, 5.0, 7.5, 10.0]  # binance-spot's presets are 10 / 10
    strategies = {"lightgbm", "logistic", "random (lightgbm)", "random (logistic)",
                  "imbalance rule", "oracle"}
    cells = {(r["strategy"], r["horizon"], r["fee_bps"], r["execution"]) for r in verdict.rows}
    assert len(cells) == len(verdict.rows) == len(strategies) * len(FEES) * 2
    assert {c[0] for c in cells} == strategies and {c[1] for c in cells} == {"10s"}
    for r in verdict.rows:
        assert list(r) == list(ROW_KEYS)
        assert r["verdict"] in ("pays", "loses", "inconclusive", "no trades")
        if r["n_trades"] == 0:
            assert r["verdict"] == "no trades" and r["net_bps_per_trade"] is None
        if r["ci95"] is not None:
            assert r["ci95"][0] <= r["net_bps_per_trade"] <= r["ci95"][1]
            assert r["n_trades"] >= 50
        if r["verdict"] == "pays":
            assert r["ci95"][0] > 0
        if r["verdict"] == "loses":
            assert r["ci95"][1] < 0


def test_the_file_the_json_command_and_the_heatmap(trained_root, verdict):
    stored = json.loads(verdict.json_path.read_text())
    assert verdict.json_path == trained_root / "reports" / "verdict.json"
    assert stored["rows"] == json.loads(json.dumps(verdict.rows))
    assert stored["minimum_sample"]["trades"] == 50
    assert verdict.png_path.stat().st_size > 10_000
    proc = subprocess.run([BOOKCAST, "verdict", "--data-dir", str(trained_root), "--json",
                           "--notional", str(NOTIONAL)],
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-2000:]
    printed = json.loads(proc.stdout)
    assert list(printed) == ["rows"] and printed["rows"] == stored["rows"]


def test_the_model_row_at_each_fee_equals_the_backtester_at_that_fee(trained_root, verdict):
    """Two paths to one figure: the verdict's fee arithmetic on cached fills against the
    backtest engine (vectorbt's portfolio) re-deriving the run's decision at the fee."""
    for fee in (0.0, 2.0, 5.0):
        config = BacktestConfig(fee_bps=fee, maker_fee_bps=fee, hold_ns=10 * SECOND,
                                horizon_ns=10 * SECOND, notional=NOTIONAL)
        stats = backtest_run(trained_root, "lightgbm-10s", config).stats
        [row] = rows_where(verdict, strategy="lightgbm", fee_bps=fee, execution="taker")
        assert row["n_trades"] == stats["n_trades"]
        if row["n_trades"]:
            assert row["net_bps_per_trade"] == pytest.approx(stats["net_bps_per_trade"],
                                                             rel=1e-9)
            assert row["break_even_fee_bps"] == pytest.approx(stats["break_even_fee_bps"],
                                                              rel=1e-9)
        [oracle] = rows_where(verdict, strategy="oracle", fee_bps=fee, execution="taker")
        assert oracle["n_trades"] == stats["baselines"]["oracle"]["n_trades"]


def test_random_entries_trade_as_often_as_the_model_in_both_executions(verdict):
    for model in ("lightgbm", "logistic"):
        for execution in ("taker", "maker"):
            for fee in FEES:
                [m] = rows_where(verdict, strategy=model, fee_bps=fee, execution=execution)
                [r] = rows_where(verdict, strategy=f"random ({model})", fee_bps=fee,
                                 execution=execution)
                assert r["n_trades"] == m["n_trades"], (model, execution, fee)


def test_the_oracle_equals_a_plain_loop_over_the_book(trained_root, verdict):
    """Perfect foresight, one position at a time: decide at each test time whether buying
    at the ask one snapshot later and selling at the bid one horizon after that (or the
    reverse) pays both fees; a decision holds the position for the horizon, and it trades
    if nothing was resynchronised since the signal and the book can fill the notional."""
    import polars as pl

    run = read_run(trained_root / "runs" / "lightgbm-10s")
    first, last = run["splits"]["test"]["first_ts"], run["splits"]["test"]["last_ts"]
    book = load_book(trained_root, "binance-spot", "BTCUSDT", first, last + 60 * SECOND)
    bid, ask = book.touch_prices()
    index = {int(t): i for i, t in enumerate(book.ts)}
    test_ts = pl.read_parquet(trained_root / "runs" / "lightgbm-10s" / "predictions.parquet"
                              )["ts"].dt.epoch("ns").to_list()

    def depth(px_sz_off: tuple, row: int) -> float:
        _, sz, off = px_sz_off
        return float(sz[off[row]:off[row + 1]].sum())

    for fee in (0.0, 1.0, 2.0):
        cost, busy_until, trades = 2 * fee * 1e-4, -1, 0
        for t in test_ts:
            if t <= busy_until:
                continue
            s, e, x = index.get(t), index.get(t + SECOND), index.get(t + 11 * SECOND)
            if e is None or x is None:
                continue
            long_net, short_net = bid[x] / ask[e] - 1 - cost, 1 - ask[x] / bid[e] - cost
            side = 1 if long_net > 0 else -1 if short_net > 0 else 0
            if book.gap[e + 1:x + 1].any() or side == 0:
                continue
            busy_until = t + 10 * SECOND
            asks = (book.ask_px, book.ask_sz, book.ask_off)
            bids = (book.bid_px, book.bid_sz, book.bid_off)
            qty = NOTIONAL / book.mid[e]
            if not book.gap[s + 1:x + 1].any() and depth(asks if side > 0 else bids, e) >= qty:
                trades += 1
        [row] = rows_where(verdict, strategy="oracle", fee_bps=fee, execution="taker")
        assert row["n_trades"] == trades, fee
        if trades:
            assert row["net_bps_per_trade"] > 0 and row["break_even_fee_bps"] > fee


def test_the_printed_verdict_fits_100_columns_and_states_what_is_missing(verdict,
                                                                         monkeypatch):
    import io

    from backtest.verdict import print_verdict

    monkeypatch.setenv("COLUMNS", "100")
    out = io.StringIO()
    print_verdict(verdict, file=out)
    text = out.getvalue()
    for line in text.splitlines():
        assert len(line) <= 100 and "…" not in line, line
    assert "binance-spot BTCUSDT, taker" in text and "BTCUSDT, maker" in text
    assert "Marks: P pays" in text and "Oracle break-even fee per side" in text
    assert "BTCUSDT: " in text  # the one-sentence conclusion per symbol


def test_without_runs_the_verdict_says_what_to_do_first(tmp_path):
    from bookcast.errors import UserError

    with pytest.raises(UserError, match=r"no trained runs under .*bookcast train"):
        run_verdict(tmp_path)


@pytest.fixture(scope="module")
def real_verdict(tmp_path_factory, captures_dir):
    """Real Binance spot BTCUSDT (11 minutes) at 1 s: LightGBM at 10 s and fee 0."""
    from collector.replay import replay_captures
    from features.build import build_features
    from models.config import TrainConfig
    from models.runs import train_run

    root = tmp_path_factory.mktemp("real-verdict")
    replay_captures([captures_dir / "binance-spot" / "btcusdt_20240808-09.jsonl.gz"], root,
                    interval_ns=SECOND, depth=100)
    build_features(root, "default", [10 * SECOND], fee_bps=0.0)
    train_run(root, TrainConfig(model="lightgbm", horizon_ns=10 * SECOND, window=20,
                                fee_bps=0.0))
    return run_verdict(root)


def test_on_the_real_capture_the_verdict_is_inconclusive_and_says_how_much_data(
        real_verdict):
    words = {r["verdict"] for r in real_verdict.rows}
    assert words <= {"inconclusive", "no trades"} and "inconclusive" in words
    model_needs = [n for n in real_verdict.needs if n["strategy"] == "lightgbm"]
    assert model_needs or not any(r["n_trades"] for r in real_verdict.rows
                                  if r["strategy"] == "lightgbm")
    for need in real_verdict.needs:
        assert need["trades_needed"] >= 50
        assert need["recorded_hours_needed"] > real_verdict.symbols[0].test_hours
    assert np.isclose(real_verdict.symbols[0].test_share, 0.2)


def test_on_the_real_capture_the_printed_verdict_names_the_row_closest_to_a_verdict(
        real_verdict):
    import io

    from backtest.verdict import is_model, print_verdict

    out = io.StringIO()
    print_verdict(real_verdict, file=out)
    text = " ".join(out.getvalue().split())
    wanted = [n for n in real_verdict.needs if is_model(n["strategy"])]
    if not wanted:
        assert "the models did not trade at any fee" in text
        return
    closest = min(wanted, key=lambda n: n["trades_needed"])
    assert (f"closest to a verdict ({closest['strategy']} {closest['horizon']} "
            f"{closest['execution']} at {closest['fee_bps']:g} bps) needs "
            f"{'at least ' if closest['trades_needed_at_least'] else '~'}"
            f"{closest['trades_needed']:,} trades") in text
    if closest["test_hours_needed"] is not None:
        recorded = closest["test_hours_needed"] / real_verdict.symbols[0].test_share
        assert f"({recorded:,.1f} h recorded" in text


def test_one_symbol_on_two_venues_is_two_markets_in_the_verdict(tmp_path):
    """Spot and perpetual BTCUSDT are different books: each gets its own rows, named by
    venue, even with different horizons (the heat-map used to mix their rows)."""
    sys.path.insert(0, str(Path(__file__).parents[1] / "models"))
    from book_fixture import NS, SYMBOL, VENUE, build_dataset

    from models.config import TrainConfig
    from models.runs import train_run

    root = tmp_path / "data"
    build_dataset(root, 1500, seed=3, venues=(VENUE, "binance-usdm"),
                  horizons_ns=(5 * NS, 10 * NS))
    train_run(root, TrainConfig(model="logistic", horizon_ns=10 * NS, feature_set="compact",
                                window=20, venue=VENUE, symbol=SYMBOL))
    train_run(root, TrainConfig(model="logistic", horizon_ns=5 * NS, feature_set="compact",
                                window=20, venue="binance-usdm", symbol=SYMBOL))
    report = run_verdict(root, notional=NOTIONAL)
    horizons = {(r["symbol"], r["horizon"]) for r in report.rows}
    assert horizons == {(f"{VENUE} {SYMBOL}", "10s"), (f"binance-usdm {SYMBOL}", "5s")}
    assert [s.label for s in report.symbols] == [f"{VENUE} {SYMBOL}", f"binance-usdm {SYMBOL}"]
    assert report.png_path is not None and report.png_path.stat().st_size > 0
