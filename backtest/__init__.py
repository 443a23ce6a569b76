"""Fee-aware backtests of a run's predictions against the recorded order book.

- `engine.run_backtest(predictions, book, config)`: the backtest as a Python call.
- `engine.backtest_run(root, run_id, config)` / `engine.write_backtest(result, root)`:
  from runs/<id>/ to the immutable backtests/<id>/ of DESIGN.md.
- `data.load_book`, `data.load_run`: the snapshots and predictions in the layout used here.
- `fills.walk_book`, `fills.fill_round_trips`: where orders fill (Numba, layout documented).
- `signals`: the decision rule and the comparison strategies (random, imbalance, oracle).
- `stats`, `report`: the figures and the printed summary.
"""

from backtest.data import Book, Run, book_from_levels, load_book, load_run
from backtest.engine import (
    BacktestConfig,
    BacktestResult,
    backtest_run,
    run_backtest,
    write_backtest,
)

__all__ = [
    "BacktestConfig",
    "BacktestResult",
    "Book",
    "Run",
    "backtest_run",
    "book_from_levels",
    "load_book",
    "load_run",
    "run_backtest",
    "write_backtest",
]
