"""Backtest: did the forecasts make money after spread, fees and latency, against baselines?"""

from __future__ import annotations

import polars as pl
import streamlit as st

from dashboard import charts, data, layout

TRADES_SHOWN = 200

st.title("Backtest")
root = layout.root()
ids = data.backtest_ids(root)
if not ids:
    if not data.run_ids(root):
        layout.show_next_step("runs", f"There are no runs under {root}/runs yet; a backtest "
                              "trades a run's predictions. Train one first:")
    layout.show_next_step("backtests", f"There are no backtests under {root}/backtests yet:")
    st.stop()

backtest_id = st.selectbox("Backtest", ids, key="backtest_id")
bt = data.load_backtest(root, backtest_id)
config, stats = bt.config, bt.stats
venue, symbol = config.get("venue"), config.get("symbol")
charged = config.get("fee_bps")
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
        ("round trips", stats.get("n_trades")), ("net PnL at this fee", net_at_fee["model"]),
        ("hit rate", stats.get("hit_rate")), ("Sharpe", stats.get("sharpe")),
        ("break-even fee (bps)", stats.get("break_even_fee_bps"))), strict=True):
    text = "-" if value is None else (f"{value:,.4g}" if isinstance(value, float) else str(value))
    column.metric(label, text)

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

st.subheader("Model against baselines (same number of trades)")
rows = []
for name, s in by_name.items():
    ci = s.get("net_pnl_per_trade_ci95")
    rows.append({
        "strategy": name, "round trips": s.get("n_trades"), "hit rate": s.get("hit_rate"),
        "gross at mid": s.get("gross_pnl_mid"), "spread": s.get("spread_cost"),
        "fees (charged)": s.get("fees"), "net (charged)": s.get("net_pnl"),
        f"net at {fee:g} bps": net_at_fee[name],
        "net/trade CI95 low": ci[0] if isinstance(ci, list) and len(ci) == 2 else None,
        "net/trade CI95 high": ci[1] if isinstance(ci, list) and len(ci) == 2 else None,
        "sharpe": s.get("sharpe"), "max drawdown": s.get("max_drawdown"),
        "break-even fee (bps)": s.get("break_even_fee_bps"),
    })
st.dataframe(pl.DataFrame(rows, infer_schema_length=None), hide_index=True,
             key="strategies_table")
if bt.trades is not None and not bt.trades.is_empty():
    with st.expander(f"{bt.trades.height} round trips"):
        st.dataframe(bt.trades, hide_index=True, key="round_trips_table")
