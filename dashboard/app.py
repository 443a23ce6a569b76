"""The dashboard's entry script: `bookcast dashboard` runs it with `streamlit run`.

The data root comes from $BOOKCAST_DATA_DIR (set by the command from --data-dir) and
the collector's metrics address from $BOOKCAST_METRICS_URL.
"""

from __future__ import annotations

import streamlit as st

from dashboard import data

st.set_page_config(page_title="bookcast", page_icon=":material/candlestick_chart:", layout="wide")

PAGES = [
    st.Page("pages/data.py", title="Data", icon=":material/dataset:", default=True),
    st.Page("pages/book.py", title="Book", icon=":material/stacked_bar_chart:"),
    st.Page("pages/features.py", title="Features", icon=":material/functions:"),
    st.Page("pages/models.py", title="Models", icon=":material/model_training:"),
    st.Page("pages/backtest.py", title="Backtest", icon=":material/account_balance:"),
]

with st.sidebar:
    st.markdown("**bookcast**: order books, fee-aware forecasts, honest backtests")
    st.caption(f"Data root: `{data.current_root().resolve()}`")
    if st.button("Reload data", help="Forget cached queries and read the files again."):
        st.cache_data.clear()

st.navigation(PAGES).run()
