"""Features: does order-book imbalance lead the mid, and how often would a trade pay fees?"""

from __future__ import annotations

from pathlib import Path

import polars as pl
import streamlit as st

from bookcast.paths import features_dir
from dashboard import charts, data, layout

st.title("Features")
root = layout.root()

sets = data.feature_sets(root)
if not sets:
    if data.coverage(root, data.files_stamp(Path(root) / "snapshots")).is_empty():
        layout.show_next_step("snapshots", f"There are no snapshots under {root} yet; "
                              "features are built from them.")
    layout.show_next_step("features", f"There is no features dataset under {root} yet:")
else:
    left, right = st.columns(2)
    with left:
        feature_set = st.selectbox("Feature set", sets, key="features_set")
    with right:
        venue, symbol = layout.pick_market(data.feature_markets(root, feature_set),
                                           key="features_market")
    columns = data.feature_columns(root, feature_set, venue, symbol)
    imbalances = [c for c in columns if c.startswith("imb")]
    horizons = data.horizons_of(columns)
    if not imbalances or not horizons:
        st.warning(f"The feature set '{feature_set}' has no imbalance column or no forward "
                   "return column (fwd_ret_<h>); rebuild it with `bookcast features`.")
    else:
        a, b, c = st.columns([1, 2, 1])
        with a:
            imbalance = st.selectbox("Imbalance", imbalances, key="features_imbalance")
        with b:
            chosen = st.multiselect("Horizons", horizons, default=horizons, key="features_h")
        with c:
            n_bins = st.slider("Bins", 4, 40, 20, key="features_bins")
        stamp = data.files_stamp(features_dir(Path(root), feature_set))
        bins = data.imbalance_response(root, feature_set, venue, symbol, imbalance,
                                       tuple(chosen), n_bins, stamp)
        st.plotly_chart(charts.imbalance_response_figure(bins, imbalance),
                        key="imbalance_chart")
        with st.expander("Bins as a table"):
            layout.show_table(bins, "imbalance_table")

st.header("Opportunities")
st.caption("Share of snapshot rows where buying at the ask and selling at the bid h later "
           "(or the reverse) pays the round trip's fees, by horizon and fee per side.")
report = data.opportunity_report(root, data.files_stamp(Path(root) / "reports"))
if report is None or report.is_empty():
    layout.show_next_step("opportunities",
                          f"There is no opportunity report under {root}/reports yet:")
elif "fee_bps" not in report.columns or "horizon" not in report.columns:
    st.warning("The opportunity report has no fee_bps or horizon column; rebuild it with "
               "`bookcast opportunities`.")
else:
    fees = sorted(report["fee_bps"].unique().to_list())
    fee = st.select_slider("Fee per side (bps)", options=fees, value=charts.useful_fee(report),
                           key="opportunity_fee",
                           help="Opens on the highest fee at which some horizon still pays "
                                "on at least 5% of rows: where the answer turns.")
    at_fee = report.filter(pl.col("fee_bps") == fee)
    if "horizon_ns" in at_fee.columns:
        at_fee = at_fee.sort("venue", "symbol", "horizon_ns")
    st.plotly_chart(charts.opportunity_figure(at_fee, fee), key="opportunity_chart")
    pct = {c: (pl.col(c) * 100).round(2) for c in ("share_long", "share_short", "share_either")
           if c in at_fee.columns}
    readable = {"venue": "venue", "symbol": "symbol", "horizon": "horizon",
                "fee_bps": "fee per side (bps)", "rows": "rows",
                "share_long": "long pays (% of rows)", "share_short": "short pays (% of rows)",
                "share_either": "either pays (% of rows)",
                "mean_abs_move_bps": "mean |move| (bps)", "mean_spread_bps": "mean spread (bps)",
                "round_trip_cost_bps": "round-trip cost (bps)",
                "move_over_cost": "mean |move| / cost"}
    st.dataframe(at_fee.with_columns(**pct).select([pl.col(c).alias(readable[c])
                                                    for c in readable if c in at_fee.columns]),
                 hide_index=True, width="stretch", key="opportunity_table")
