"""Data: what the data root holds per venue, symbol and day, and the collector's health."""

from __future__ import annotations

from pathlib import Path

import polars as pl
import streamlit as st

from dashboard import charts, data, health, layout

st.title("Data")
root = layout.root()
st.caption("Coverage per venue, symbol and UTC day of the snapshots dataset: rows, "
           "resynchronisations (`gap` rows), grid points with no row, time range, trades.")

stamp = data.files_stamp(Path(root) / "snapshots")
cover = data.coverage(root, stamp)
if cover.is_empty():
    layout.show_next_step(
        "snapshots",
        f"There are no snapshots under {root} yet. Make some from a capture (simulated "
        "or recorded), or record live books:")
else:
    totals = st.columns(4)
    totals[0].metric("markets", cover.select("venue", "symbol").n_unique())
    totals[1].metric("days", cover.height)
    totals[2].metric("snapshot rows", f"{int(cover['rows'].sum()):,}")
    totals[3].metric("grid points without a row",
                     f"{int(cover['missing_grid_points'].fill_null(0).sum()):,}")
    st.plotly_chart(charts.coverage_figure(cover, data.missing_spans(root, stamp)),
                    key="coverage_chart")
    st.dataframe(
        cover.select("venue", "symbol", pl.col("date").alias("date (UTC)"), "rows",
                     pl.col("gap_rows").alias("resync rows (gap)"),
                     pl.col("missing_grid_points").alias("grid points without a row"),
                     pl.col("first_ts").dt.strftime("%Y-%m-%d %H:%M:%S").alias("first row (UTC)"),
                     pl.col("last_ts").dt.strftime("%Y-%m-%d %H:%M:%S").alias("last row (UTC)"),
                     pl.col("interval").alias("grid interval"),
                     pl.col("depth").alias("depth (levels)"), "trades"),
        hide_index=True, width="stretch", key="coverage_table",
    )

st.header("Collector health")
url = health.metrics_url()
collector = health.collector_health(url)
if not collector.reachable:
    st.warning(f"No collector running: nothing answers at {url} ({collector.error}). "
               "Start one with `bookcast collect`, or point the dashboard at it with "
               "`bookcast dashboard --metrics-url URL`.")
else:
    st.success(f"Collector metrics from {url}")
    by_symbol = health.health_by_symbol(collector.samples)
    if not by_symbol.is_empty():
        st.dataframe(by_symbol, hide_index=True, key="health_symbols")
    process = (collector.samples.filter(pl.col("symbol").is_null())
               .group_by("name", "venue", "conn", maintain_order=True).agg(pl.col("value").sum()))
    if not process.is_empty():
        st.dataframe(process, hide_index=True, key="health_streams")
