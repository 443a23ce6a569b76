"""Fee-aware backtests of a run's predictions against the recorded order book.

- `engine.run_backtest(predictions, book, config)`: the backtest as a Python call.
- `engine.backtest_run(root, run_id, config)` / `engine.write_backtest(result, root)`:
  from runs/<id>/ to the immutable backtests/<id>/ of DESIGN.md.
- `data.load_book`, `data.load_run`: the snapshots and predictions in the layout used here.
- `fills.walk_book`, `fills.fill_round_trips`: where orders fill (Numba, layout documented).
- `signals`: the decision rule and the comparison strategies (random, imbalance, oracle).
- `stats`, `report`: the figures and the printed summary.
"""

from __future__ import annotations

from bookcast.lazy import lazy_exports

# loaded on first use: `bookcast --help` and other commands need not import vectorbt
_EXPORTS = {
    "Book": "backtest.data", "Run": "backtest.data", "book_from_levels": "backtest.data",
    "load_book": "backtest.data", "load_run": "backtest.data",
    "BacktestConfig": "backtest.engine", "BacktestResult": "backtest.engine",
    "backtest_run": "backtest.engine", "run_backtest": "backtest.engine",
    "write_backtest": "backtest.engine",
}
__getattr__, __all__ = lazy_exports("backtest", _EXPORTS)
