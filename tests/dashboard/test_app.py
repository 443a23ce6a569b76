"""Every page of the app, run by Streamlit's AppTest on a data root the real pipeline wrote."""

from __future__ import annotations

import base64
import json
from pathlib import Path

import numpy as np
import polars as pl
import pytest
from streamlit.testing.v1 import AppTest

APP = str(Path(__file__).resolve().parents[2] / "dashboard" / "app.py")
PAGES = ("book", "features", "models", "backtest")


def open_page(page: str | None) -> AppTest:
    at = AppTest.from_file(APP, default_timeout=60).run()
    if page is not None:
        at.switch_page(f"pages/{page}.py").run()
    assert not at.exception, [e.value for e in at.exception]
    return at


def charts(at: AppTest) -> dict[str, dict]:
    """The page's plotly figures by widget key, as the browser would receive them."""
    out = {}
    for element in at.get("plotly_chart"):
        key = element.proto.id.rsplit("-", 1)[-1]
        out[key] = json.loads(element.proto.spec)
    return out


def values(array: object) -> np.ndarray:
    """A figure array as plotly 6+ sends it: a list, or base64 typed data with a dtype."""
    if isinstance(array, dict) and "bdata" in array:
        flat = np.frombuffer(base64.b64decode(array["bdata"]), dtype=array["dtype"])
        shape = array.get("shape")
        return flat.reshape([int(n) for n in str(shape).split(",")]) if shape else flat
    return np.asarray(array)


def trace_names(figure: dict) -> list[str]:
    return [trace.get("name") for trace in figure["data"]]


def dataframe(at: AppTest, column: str):
    """The table on the page that has `column` (AppTest does not expose table keys)."""
    return next(d.value for d in at.dataframe if column in d.value.columns)


def rerun(at: AppTest) -> AppTest:
    at.run()
    assert not at.exception, [e.value for e in at.exception]
    return at


def test_data_page_shows_coverage_per_market_and_day(pipeline_root, data_root_env):
    data_root_env(pipeline_root)
    at = open_page(None)
    table = dataframe(at, "grid points without a row")
    markets = set(zip(table["venue"], table["symbol"], strict=True))
    assert markets == {("binance-spot", "BTCUSDT"), ("binance-spot", "ETHUSDT")}
    # The captures cross midnight: two UTC days per symbol.
    assert sorted(table["date (UTC)"].unique()) == ["2024-08-08", "2024-08-09"]
    assert not [c for c in table.columns if "_" in c]  # readable names, not raw ones
    assert (table["rows"] > 0).all() and (table["trades"] > 0).all()
    assert "coverage_chart" in charts(at)
    assert any("No collector running" in w.value for w in at.warning)


def test_book_page_draws_heatmap_touch_and_trades(pipeline_root, data_root_env):
    data_root_env(pipeline_root)
    at = open_page("book")
    figure = charts(at)["depth_heatmap"]
    assert trace_names(figure)[:3] == ["resting size", "best bid", "best ask"]
    assert {"buy (aggressor)", "sell (aggressor)"} <= set(trace_names(figure))
    heat = figure["data"][0]
    assert heat["type"] == "heatmap" and heat["colorbar"]["title"]["text"] == "log10 size"


def test_book_page_follows_symbol_window_and_levels(pipeline_root, data_root_env):
    data_root_env(pipeline_root)
    at = open_page("book")
    before = charts(at)["depth_heatmap"]
    at.selectbox(key="book_market").set_value(("binance-spot", "ETHUSDT"))
    eth = charts(rerun(at))["depth_heatmap"]
    assert "ETHUSDT" in eth["layout"]["title"]["text"]
    # ETH trades near 2,500 USDT, BTC near 60,000: the price axis moved with the symbol.
    assert values(eth["data"][0]["y"]).max() < values(before["data"][0]["y"]).min()
    at.selectbox(key="book_window").set_value("1 minute")
    short = charts(rerun(at))["depth_heatmap"]
    assert len(values(short["data"][0]["x"])) < len(values(eth["data"][0]["x"]))
    at.slider(key="book_levels").set_value(5)
    thin = charts(rerun(at))["depth_heatmap"]
    span = [np.ptp(values(f["data"][0]["y"])) for f in (thin, short)]
    assert span[0] < span[1]  # five levels a side cover a narrower price range


def test_features_page_bins_imbalance_per_horizon_and_filters_fee(pipeline_root,
                                                                    data_root_env):
    data_root_env(pipeline_root)
    at = open_page("features")
    figure = charts(at)["imbalance_chart"]
    assert trace_names(figure) == ["h = 1s", "h = 5s", "h = 10s"]
    assert all(trace["error_y"]["visible"] for trace in figure["data"])
    # The default fee level is the one nearest a typical 10 bps taker fee.
    # The default fee is the highest at which some horizon still pays on 5% of rows.
    before = dataframe(at, "long pays (% of rows)")
    report = pl.read_parquet(pipeline_root / "reports" / "opportunities.parquet")
    paying = report.filter(pl.max_horizontal("share_long", "share_short") >= 0.05)
    assert set(before["fee per side (bps)"]) == {paying["fee_bps"].max()}
    assert before["long pays (% of rows)"].max() > 0
    axis = charts(at)["opportunity_chart"]["layout"]["yaxis"]
    assert axis["range"] == [0, 1] and axis["tickformat"] == ".0%"
    at.select_slider(key="opportunity_fee").set_value(0.0)
    rerun(at)
    free = dataframe(at, "long pays (% of rows)")
    assert set(free["fee per side (bps)"]) == {0.0}
    assert (free["either pays (% of rows)"].to_numpy()
            >= before["either pays (% of rows)"].to_numpy()).all()
    assert free["either pays (% of rows)"].max() <= 100.0
    at.multiselect(key="features_h").set_value(["10s"])
    assert trace_names(charts(rerun(at))["imbalance_chart"]) == ["h = 10s"]


def test_models_page_sets_the_run_beside_its_baselines(pipeline_root, data_root_env):
    data_root_env(pipeline_root)
    at = open_page("models")
    shown = charts(at)
    assert {"macro_f1_chart", "confusion_chart", "calibration_chart", "pr_up_chart",
            "pr_down_chart"} <= set(shown)
    estimators = set(dataframe(at, "estimator")["estimator"])
    assert "run id" in dataframe(at, "estimator").columns
    assert {"logistic", "always_flat", "imbalance_rule", "logistic_imbalance"} <= estimators
    pr_names = " ".join(trace_names(shown["pr_up_chart"]))
    assert "model (AP" in pr_names and "imbalance_rule (AP" in pr_names
    confusion = shown["confusion_chart"]["data"][0]
    at.selectbox(key="models_confusion_of").set_value("always_flat")
    flat = charts(rerun(at))["confusion_chart"]["data"][0]
    # Always-flat puts every row in the middle column.
    counts = np.asarray(flat["text"], dtype=int)
    assert counts[:, [0, 2]].sum() == 0 and counts[:, 1].sum() > 0
    assert flat["text"] != confusion["text"]
    assert any("behavioural" in i.value for i in at.info)


def test_backtest_page_shows_costs_curves_and_fee_what_if(pipeline_root, data_root_env):
    data_root_env(pipeline_root)
    at = open_page("backtest")
    shown = charts(at)
    assert {"equity_chart", "trades_chart", "cost_chart", "ci_chart", "fee_chart",
            "latency_chart"} <= set(shown)
    assert trace_names(shown["equity_chart"]) == ["gross (mid, no fees)", "net",
                                                   "net drawdown"]
    strategies = dataframe(at, "strategy")
    assert list(strategies["strategy"]) == ["model", "random", "imbalance_l1", "oracle"]
    # At the fee the backtest charged (the run's, 0 bps), the what-if equals the stored net.
    assert strategies["net at 0 bps (USDT)"].to_list() == pytest.approx(
        strategies["net charged (USDT)"].to_list(), rel=1e-9, abs=1e-9)
    at.slider(key="backtest_fee").set_value(1.0)
    rerun(at)
    fees_bar = values(charts(at)["cost_chart"]["data"][0]["y"])[2]
    at1 = dataframe(at, "strategy")["net at 1 bps (USDT)"][0]
    at.slider(key="backtest_fee").set_value(10.0)
    rerun(at)
    after = values(charts(at)["cost_chart"]["data"][0]["y"])
    assert fees_bar != 0 and after[2] == pytest.approx(10 * fees_bar)  # fees scale with the fee
    assert dataframe(at, "strategy")["net at 10 bps (USDT)"][0] < at1


def test_empty_data_root_says_what_to_run_on_every_page(tmp_path, data_root_env):
    data_root_env(tmp_path)
    for page in (None, *PAGES):
        at = open_page(page)
        commands = " ".join(c.value for c in at.code)
        assert "bookcast" in commands and str(tmp_path) in commands, page
        assert not at.get("plotly_chart"), page


def test_damaged_run_and_backtest_files_show_as_missing(pipeline_root, copy_of,
                                                        data_root_env):
    root = data_root_env(copy_of(pipeline_root))
    run_dir = next((root / "runs").glob("2*"))
    (run_dir / "metrics.json").write_text('{"macro_f1": 0.5}')  # every other key missing
    (run_dir / "predictions.parquet").write_bytes(b"not parquet")
    backtest = next((root / "backtests").glob("2*"))
    (backtest / "stats.json").write_text('{"n_trades": 3}')
    (backtest / "equity.parquet").unlink()
    models = open_page("models")
    assert "confusion_chart" in charts(models)
    finished = open_page("backtest")
    assert "equity_chart" in charts(finished)
