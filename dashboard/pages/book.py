"""Book: a Bookmap-style depth heatmap with the touch and the trades over it."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import streamlit as st

from bookcast.timeutil import NS_PER_UNIT
from dashboard import charts, data, layout

WINDOWS = {"1 minute": 60, "5 minutes": 300, "15 minutes": 900, "1 hour": 3600,
           "6 hours": 21600}

st.title("Book")
root = layout.root()
cover = data.coverage(root, data.files_stamp(Path(root) / "snapshots"))
if cover.is_empty():
    layout.show_next_step("snapshots", f"There are no snapshots under {root} to draw yet.")
    st.stop()

markets = sorted({(r["venue"], r["symbol"]) for r in cover.iter_rows(named=True)})
left, mid, right = st.columns([2, 1, 1])
with left:
    venue, symbol = layout.pick_market(markets, key="book_market")
rows = cover.filter((cover["venue"] == venue) & (cover["symbol"] == symbol))
first_ns, last_ns = int(rows["first_ns"].min()), int(rows["last_ns"].max())
interval_ns = int(rows["interval_ns"].drop_nulls().min() or NS_PER_UNIT["s"])
with mid:
    window_name = st.selectbox("Window", list(WINDOWS), index=1, key="book_window")
with right:
    levels = st.slider("Levels per side", 1, 100, 25, key="book_levels")
window_ns = WINDOWS[window_name] * NS_PER_UNIT["s"]
latest_start = max(first_ns, last_ns - window_ns)
if latest_start > first_ns:
    start = st.slider(
        "Window start (UTC)", min_value=layout.as_datetime(first_ns),
        max_value=layout.as_datetime(latest_start), value=layout.as_datetime(latest_start),
        step=dt.timedelta(seconds=max(1, interval_ns // NS_PER_UNIT["s"])),
        format="YYYY-MM-DD HH:mm:ss", key="book_start")
    start_ns = layout.as_ns(start)
else:
    start_ns = first_ns
end_ns = start_ns + window_ns

stamp = data.market_stamp(root, venue, symbol)
book = data.book_window(root, venue, symbol, start_ns, end_ns, levels, stamp)
trades = data.trades_window(root, venue, symbol, start_ns, end_ns, stamp)
tick = rows["tick_size"].drop_nulls().first() if "tick_size" in rows.columns else None
grid = charts.depth_grid(book, tick_size=tick)
top = book.select("ts_ns", best_bid=book["bid_px"].list.first(),
                  best_ask=book["ask_px"].list.first())
shown = charts.bucket_trades(trades, grid.times_ns, data.MAX_TRADE_MARKERS)

stats = st.columns(4)
stats[0].metric("snapshots in window", f"{book.height:,}")
stats[1].metric("trades in window", f"{trades.height:,}")
stats[2].metric("buy volume", f"{trades.filter(trades['side'] > 0)['size'].sum():,.4g}")
stats[3].metric("sell volume", f"{trades.filter(trades['side'] < 0)['size'].sum():,.4g}")
title = (f"{venue} {symbol}: {layout.utc(start_ns)} to {layout.utc(end_ns)} UTC, "
         f"{levels} levels a side")
st.plotly_chart(charts.depth_heatmap(grid, top, shown, title), key="depth_heatmap")
if shown.height < trades.height:
    st.caption(f"{trades.height:,} trades are drawn summed per time column, price and side.")
if int(book["gap"].sum()) if book.height else 0:
    st.caption(f"{int(book['gap'].sum())} snapshot(s) in this window follow a book "
               "resynchronisation (`gap`).")
