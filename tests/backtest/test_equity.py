"""The net equity computed from vectorbt's order records is vectorbt's own value()."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import vectorbt as vbt

from backtest.data import Book, load_book
from backtest.engine import BacktestConfig, _portfolio, price_decisions, value_from_orders
from backtest.signals import random_decisions

SECOND = 1_000_000_000


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


@pytest.fixture(scope="module")
def real_book(tmp_path_factory: pytest.TempPathFactory, captures_dir: Path) -> Book:
    """Eleven minutes of the real Binance spot BTCUSDT book on a 1 s grid."""
    from collector.replay import replay_captures

    root = tmp_path_factory.mktemp("real-book")
    replay_captures([captures_dir / "binance-spot" / "btcusdt_20240808-09.jsonl.gz"], root,
                    interval_ns=SECOND, depth=20)
    return load_book(root, "binance-spot", "BTCUSDT", 0, 2**62)


@pytest.mark.parametrize("maker_fee_bps", [None, 2.0], ids=["taker-scalar-fee", "maker-fee-per-order"])
def test_portfolio_on_trading_rows_equals_vectorbt_on_every_row(real_book: Book,
                                                                maker_fee_bps: float | None):
    """The engine simulates only the rows where some strategy trades; vectorbt run over
    every row, with its own pandas value(), gives the same trades and net equity, and the
    gross equity is the mid's moves while each position is held, summed trade by trade."""
    book = real_book
    config = BacktestConfig(fee_bps=10.0, hold_ns=5 * SECOND, horizon_ns=5 * SECOND,
                            maker=maker_fee_bps is not None, maker_fee_bps=maker_fee_bps,
                            notional=5_000.0)
    strategies = {name: price_decisions(book, random_decisions(
        book.ts[:-20], 40, 5 * SECOND, np.random.default_rng(seed)), config, book.interval_ns)
        for name, seed in (("a", 1), ("b", 2), ("c", 3))}
    assert all(f.ok.sum() >= 5 for f in strategies.values())
    w0, w1, capital = 3, len(book) - 1, 5_000.0
    ours = _portfolio(book, strategies, w0, w1, capital)

    n_rows, n_cols = w1 - w0 + 1, len(strategies)
    close = book.mid[w0:w1 + 1]
    assert not np.isnan(close).any()
    size, price, fees = (np.full((n_rows, n_cols), np.nan) for _ in range(3))
    init_cash = np.full(n_cols, capital)
    for c, f in enumerate(strategies.values()):
        ok = f.ok
        signed = f.decisions.side[ok] * f.qty[ok]
        e, x = f.entry_row[ok] - w0, f.exit_row[ok] - w0
        size[e, c], size[x, c] = signed, -signed
        price[e, c], price[x, c] = f.entry_px[ok], f.exit_px[ok]
        fees[e, c], fees[x, c] = f.entry_fee_rate, f.exit_fee_rate
        init_cash[c] += np.sum(f.qty[ok] * f.entry_px[ok] * (1 + f.entry_fee_rate))
    pf = vbt.Portfolio.from_orders(np.broadcast_to(close[:, None], (n_rows, n_cols)), size,
                                   price=price, fees=np.nan_to_num(fees), size_type="amount",
                                   direction="both", init_cash=init_cash)
    value = pf.value().to_numpy()
    records = pf.trades.values
    for c, (name, f) in enumerate(strategies.items()):
        net, gross, trades = ours[name]
        np.testing.assert_allclose(net, value[:, c] - init_cash[c] + capital, rtol=0, atol=1e-6)
        theirs = records[records["col"] == c]
        assert trades.shape == theirs.shape
        for field in ("entry_idx", "exit_idx", "size", "entry_price", "exit_price",
                      "entry_fees", "exit_fees", "pnl", "direction", "status"):
            np.testing.assert_allclose(trades[field], theirs[field], rtol=1e-12, err_msg=field)
        expected = np.full(n_rows, capital)
        rows = np.arange(n_rows)
        ok = f.ok
        for s, q, e, x in zip(f.decisions.side[ok], f.qty[ok], f.entry_row[ok] - w0,
                              f.exit_row[ok] - w0, strict=True):
            expected += s * q * (close[np.clip(rows, e, x)] - close[e])
        np.testing.assert_allclose(gross, expected, rtol=0, atol=1e-6)
