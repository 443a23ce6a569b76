"""The net equity computed from vectorbt's order records is vectorbt's own value()."""

from __future__ import annotations

import numpy as np
import vectorbt as vbt

from backtest.engine import value_from_orders


def test_value_from_orders_equals_vectorbt_portfolio_value():
    rng = np.random.default_rng(3)
    n_rows, n_cols = 400, 3
    close = 100 + np.cumsum(rng.normal(0, 0.1, n_rows))
    size = np.full((n_rows, n_cols), np.nan)
    price = np.full((n_rows, n_cols), np.nan)
    for c in range(n_cols):
        entries = np.sort(rng.choice(np.arange(0, n_rows - 10, 10), 15, replace=False))
        for e in entries:
            side = rng.choice([-1.0, 1.0])
            q = rng.uniform(0.5, 3.0)
            size[e, c], size[e + 5, c] = side * q, -side * q
            price[e, c] = close[e] + side * 0.05
            price[e + 5, c] = close[e + 5] - side * 0.05
    init_cash = np.full(n_cols, 10_000.0)
    pf = vbt.Portfolio.from_orders(np.broadcast_to(close[:, None], (n_rows, n_cols)), size,
                                   price=price, fees=0.001, size_type="amount",
                                   direction="both", init_cash=init_cash)
    ours = value_from_orders(pf.orders.values, close, init_cash)
    np.testing.assert_allclose(ours, pf.value().to_numpy(), rtol=0, atol=1e-9)
