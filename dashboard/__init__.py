"""dashboard: the Streamlit app over the data root (`bookcast dashboard`).

- `app`: the entry script; `pages/`: Data, Book, Features, Models, Backtest
- `data`: cached duckdb/polars queries, always filtered by venue, symbol and time first
- `charts`: plotly figures as pure functions of dataframes (testable without Streamlit)
- `health`: the collector daemon's Prometheus metrics, parsed
- `layout`: pieces the pages share (market picker, "what to run next")
- `cli`: `bookcast dashboard [--data-dir DIR] [--port 8501] [--metrics-url URL]`
"""

