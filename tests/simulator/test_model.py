"""The Numba queue model: its Fenwick index, its book, recentring of its price grid, and the
rules that make the race (and the null control's lack of one)."""

from __future__ import annotations

import dataclasses

import numpy as np

from collector.simulator import model, preset_for
from collector.simulator.presets import null_control
from collector.simulator.simulate import SIM_START_NS, SimulatedBook

NS = 1_000_000_000


def test_fenwick_prefix_and_find_agree_with_cumsum():
    rng = np.random.default_rng(0)
    counts = rng.integers(0, 3, 256).astype(np.int64)
    fw = np.zeros(257, dtype=np.int64)
    model.fenwick_build(counts, fw)
    cum = np.cumsum(counts)
    assert all(model.fenwick_prefix(fw, j) == cum[j] for j in range(256))
    for target in range(int(cum[-1])):
        assert model.fenwick_find(fw, target) == int(np.searchsorted(cum, target, side="right"))
    model.fenwick_add(fw, 10, 5)
    assert model.fenwick_prefix(fw, 255) == cum[-1] + 5


def test_diffs_rebuild_the_model_book_exactly_across_grid_recentring():
    # a small grid and shallow placement make the mid walk past the recentring margin
    preset = dataclasses.replace(preset_for("binance-spot", "ETHUSDT"), depth_ticks=40)
    book = SimulatedBook(preset, np.random.default_rng(5), SIM_START_NS, grid_ticks=256)
    origin0 = int(book.ist[model.ORIGIN])
    bids, asks = book.depth(10_000)
    replica = {0: {int(p): int(q) for p, q in bids}, 1: {int(p): int(q) for p, q in asks}}
    last_u = book.last_update_id
    t = SIM_START_NS
    tops = 0
    for _ in range(60):
        t += 10 * NS
        hdr, lvl, _ = book.advance(t)
        start = 0
        for _e_ms, first, last, end, bid, bid_lots, ask, ask_lots in hdr.tolist():
            assert first == last_u + 1
            last_u = last
            for side, price, size in lvl[start:end].tolist():
                if size:
                    replica[side][price] = size
                else:
                    replica[side].pop(price, None)
            start = end
            # the top each diff reports is the top of the book the diffs rebuild
            assert (bid, ask) == (max(replica[0]), min(replica[1]))
            assert (bid_lots, ask_lots) == (replica[0][bid], replica[1][ask])
            tops += 1
    assert tops > 5000
    assert int(book.ist[model.ORIGIN]) != origin0, "the test must cross a recentring"
    bids, asks = book.depth(10_000)
    assert replica[0] == {int(p): int(q) for p, q in bids}
    assert replica[1] == {int(p): int(q) for p, q in asks}
    assert max(replica[0]) < min(replica[1])  # never crossed
    # queue sizes and order counts stay consistent with the Fenwick index
    for side in range(2):
        assert np.all((book.size[side] > 0) == (book.orders[side] > 0))
        assert model.fenwick_prefix(book.fw[side], 255) == book.orders[side].sum()


def _run(preset, seconds: int, seed: int = 3):
    book = SimulatedBook(preset, np.random.default_rng(seed), SIM_START_NS)
    hdrs, trades = [], []
    for k in range(seconds):
        hdr, _, trd = book.advance(SIM_START_NS + (k + 1) * NS)
        hdrs.append(hdr)
        trades.append(trd)
    return np.concatenate(hdrs), np.concatenate(trades)


def test_no_market_order_is_larger_than_the_presets_largest():
    preset = preset_for("binance-spot", "BTCUSDT")
    _, trades = _run(preset, 300)
    # a market order's fills share its event time and side
    keys = trades[:, 0] * 2 + trades[:, 4]
    _, inverse = np.unique(keys, return_inverse=True)
    per_order = np.bincount(inverse, weights=trades[:, 3])
    assert per_order.max() <= preset.lots(preset.max_order) + 1
    assert len(per_order) > 300 * 2 * preset.market_rate * 0.7


def test_the_price_moves_by_requote_jumps_and_the_spread_stays_one_tick():
    preset = preset_for("binance-spot", "BTCUSDT")
    hdr, _ = _run(preset, 300)
    mid2 = hdr[:, 4] + hdr[:, 6]
    jumps = np.abs(np.diff(mid2))[np.diff(mid2) != 0] / 2
    # a depletion requotes the side at least a fraction of jump_ticks away
    assert np.median(jumps) > 0.5 * preset.jump_ticks
    assert np.mean(hdr[:, 6] - hdr[:, 4] == 1) > 0.97


def test_in_the_null_control_best_queues_never_empty_and_moves_are_requotes():
    preset = null_control(preset_for("binance-spot", "BTCUSDT"))
    hdr, trades = _run(preset, 600)
    mid2 = hdr[:, 4] + hdr[:, 6]
    moves = np.diff(mid2)[np.diff(mid2) != 0]
    # requotes only: every move keeps the spread, up and down equally often
    assert np.all(hdr[:, 6] - hdr[:, 4] == hdr[0, 6] - hdr[0, 4])
    rate = len(moves) / 600
    assert 0.6 * preset.null_requote_rate < rate < 1.4 * preset.null_requote_rate
    assert abs(np.mean(moves > 0) - 0.5) < 0.1
    # trades only ever happen at the best quotes: nothing walks the book
    assert len(trades) > 1000
