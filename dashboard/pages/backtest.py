"""Backtest: did the forecasts make money after spread, fees and latency, against baselines?"""

from __future__ import annotations

import shlex
from pathlib import Path

import polars as pl
import streamlit as st

from dashboard import charts, data, layout

TRADES_SHOWN = 200

st.title("Backtest")
root = layout.root()


def show_verdict() -> None:
    """The fee x horizon answer from reports/verdict.json (`bookcast verdict`)."""
    st.header("The answer: which fees and horizons pay?")
    rows, problem = data.verdict_rows(root, data.files_stamp(Path(root) / "reports", "*.json"))
    if problem:
        st.warning(problem)
        return
    if rows is None:
        st.info(f"There is no verdict under {root}/reports yet; it judges every strategy "
                "at every fee and horizon:")
        st.code(f"bookcast verdict --data-dir {shlex.quote(root)}", language="bash")
        return
    baseline = ("random", "oracle", "imbalance", "(")
    names = sorted(rows["strategy"].unique().to_list(),
                   key=lambda n: (str(n).startswith(baseline), str(n)))
    a, b, c = st.columns(3)
    with a:
        symbol = st.selectbox("Symbol", sorted(rows["symbol"].unique().to_list()),
                              key="verdict_symbol")
    with b:
        strategy = st.selectbox("Strategy", names, key="verdict_strategy")
    with c:
        execution = st.selectbox("Execution", sorted(rows["execution"].unique().to_list(),
                                                     key=lambda e: e != "taker"),
                                 key="verdict_execution")
    chosen = rows.filter((pl.col("symbol") == symbol) & (pl.col("strategy") == strategy)
                         & (pl.col("execution") == execution))
    counts = chosen.group_by("verdict").len()
    count = dict(zip(counts["verdict"], counts["len"], strict=True))
    cells = chosen.height
    paying = chosen.filter(pl.col("verdict") == "pays")
    if paying.height:
        where = ", ".join(f"{r['horizon']} at {r['fee_bps']:g} bps"
                          for r in paying.head(4).iter_rows(named=True))
        st.success(f"{strategy} on {symbol} ({execution}) pays after costs in "
                   f"{paying.height} of {cells} fee × horizon cells ({where}"
                   f"{', …' if paying.height > 4 else ''}).")
    else:
        st.warning(f"{strategy} on {symbol} ({execution}) pays in none of the {cells} fee × "
                   f"horizon cells: it loses in {count.get('loses', 0)}, "
                   f"{count.get('inconclusive', 0)} are inconclusive (too few trades or an "
                   f"interval spanning zero), {count.get('no trades', 0)} made no trades.")
    st.plotly_chart(charts.verdict_heatmap(
        chosen, f"{strategy} on {symbol}, {execution}: net bps per trade after costs"),
        key="verdict_chart")
    with st.expander("Every verdict row"):
        st.dataframe(chosen.select(
            pl.col("horizon").alias("horizon"), pl.col("fee_bps").alias("fee per side (bps)"),
            pl.col("n_trades").alias("trades"),
            pl.col("net_bps_per_trade").alias("net per trade (bps)"),
            pl.col("ci95").map_elements(lambda ci: None if ci is None else
                                        f"[{ci[0]:.2f}, {ci[1]:.2f}]",
                                        return_dtype=pl.Utf8).alias("95% interval (bps)"),
            pl.col("break_even_fee_bps").alias("break-even fee (bps)"),
            pl.col("verdict")), hide_index=True, width="stretch", key="verdict_table")


show_verdict()
st.header("One backtest")
ids = data.backtest_ids(root)
if not ids:
    if not data.run_ids(root):
        layout.show_next_step("runs", f"There are no runs under {root}/runs yet; a backtest "
                              "trades a run's predictions. Train one first:")
    layout.show_next_step("backtests", f"There are no backtests under {root}/backtests yet:")
    st.stop()

opening = data.most_informative_backtest(root, ids)
backtest_id = st.selectbox("Backtest", ids, index=ids.index(opening), key="backtest_id",
                           help="Opens on the backtest whose model traded most.")
bt = data.load_backtest(root, backtest_id)
config, stats = bt.config, bt.stats
venue, symbol = config.get("venue"), config.get("symbol")
charged = config.get("fee_bps")
ccy = data.quote_currency(symbol)
sentence = data.money_sentence(stats, charged if isinstance(charged, int | float) else None,
                               ccy)
net_charged = stats.get("net_pnl")
if isinstance(net_charged, int | float) and net_charged > 0 and stats.get("n_trades"):
    st.success(sentence)
else:
    st.warning(sentence)
st.caption(f"Run {config.get('run_id', '-')} ({config.get('model', '-')}) on {venue} {symbol}; "
           f"fees {charged} bps per side ({config.get('fee_source', '-')}), latency "
           f"{config.get('latency', '-')}, hold {config.get('hold', '-')}, capital "
           f"{config.get('capital', '-')}.")

fee = st.slider("Fee per side (bps)", 0.0, 50.0,
                float(charged) if isinstance(charged, int | float) else 10.0, 0.5,
                key="backtest_fee",
                help="Recomputes net PnL as if every fill had paid this fee; the fills "
                     "themselves do not depend on the fee.")
if config.get("maker"):
    st.caption("Entries were passive at the maker fee; the what-if applies one fee to both "
               "sides.")
by_name = data.strategies(stats)
net_at_fee = {name: data.net_pnl_at_fee(s, fee) for name, s in by_name.items()}
traded = stats.get("traded_value")
fees_at = fee * 1e-4 * traded if isinstance(traded, int | float) else None

figures = st.columns(5)
for column, (label, value) in zip(figures, (
        ("round trips", stats.get("n_trades")),
        (f"net PnL at this fee ({ccy})", net_at_fee["model"]),
        ("hit rate (%)", None if stats.get("hit_rate") is None else 100 * stats["hit_rate"]),
        ("Sharpe", stats.get("sharpe")),
        ("break-even fee (bps)", stats.get("break_even_fee_bps"))), strict=True):
    if value is None or not stats.get("n_trades"):
        text = "-" if value is None or label != "round trips" else str(value)
    else:
        text = f"{value:,.4g}" if isinstance(value, float) else str(value)
    column.metric(label, "0" if text == "-0" else text)

st.plotly_chart(charts.equity_figure(bt.equity), key="equity_chart")
# A day of round trips is unreadable on one chart; show a slice of them and its prices.
shown_trades = bt.trades
if bt.trades is not None and {"entry_ts", "exit_ts"} <= set(bt.trades.columns) \
        and bt.trades.height:
    if bt.trades.height > TRADES_SHOWN:
        first = st.slider("First round trip shown", 1, bt.trades.height - TRADES_SHOWN + 1, 1,
                          key="backtest_trades_from",
                          help=f"The chart shows {TRADES_SHOWN} round trips at a time.")
        shown_trades = bt.trades.slice(first - 1, TRADES_SHOWN)
    lo = int(shown_trades["entry_ts"].cast(pl.Int64).min())
    hi = int(shown_trades["exit_ts"].cast(pl.Int64).max())
    top = data.book_top(root, str(venue), str(symbol), lo, hi,
                        data.market_stamp(root, str(venue), str(symbol)))
else:
    top = pl.DataFrame(schema={"ts_ns": pl.Int64, "best_bid": pl.Float64,
                               "best_ask": pl.Float64})
st.plotly_chart(charts.trades_on_price_figure(top, shown_trades), key="trades_chart")

left, right = st.columns(2)
with left:
    st.plotly_chart(charts.cost_waterfall(stats, fees_at, fee), key="cost_chart")
with right:
    st.plotly_chart(charts.ci_figure(by_name), key="ci_chart")
left, right = st.columns(2)
with left:
    st.plotly_chart(charts.fee_curve_figure(stats, fee), key="fee_chart")
with right:
    st.plotly_chart(charts.latency_curve_figure(stats), key="latency_chart")

st.subheader("Model against its comparison rows")
rows = []
for name, s in by_name.items():
    ci = s.get("net_pnl_per_trade_ci95")
    pair = isinstance(ci, list) and len(ci) == 2
    hit = s.get("hit_rate")
    rows.append({
        "strategy": name, "round trips": s.get("n_trades"),
        "hit rate (%)": None if hit is None else 100 * hit,
        f"gross at mid ({ccy})": s.get("gross_pnl_mid"), f"spread ({ccy})": s.get("spread_cost"),
        f"fees charged ({ccy})": s.get("fees"), f"net charged ({ccy})": s.get("net_pnl"),
        f"net at {fee:g} bps ({ccy})": net_at_fee[name],
        f"net/trade 95% low ({ccy})": ci[0] if pair else None,
        f"net/trade 95% high ({ccy})": ci[1] if pair else None,
        "sharpe": s.get("sharpe"),
        "max drawdown (%)": None if s.get("max_drawdown") is None else 100 * s["max_drawdown"],
        "break-even fee (bps)": s.get("break_even_fee_bps"),
    })
st.dataframe(pl.DataFrame(rows, infer_schema_length=None), hide_index=True, width="stretch",
             key="strategies_table")
if bt.trades is not None and not bt.trades.is_empty():
    with st.expander(f"{bt.trades.height} round trips"):
        layout.show_table(bt.trades, "round_trips_table")
