"""The Numba queue model: its Fenwick index, its book, and recentring of its price grid."""

from __future__ import annotations

import dataclasses

import numpy as np

from collector.simulator import model, preset_for
from collector.simulator.simulate import SIM_START_NS, SimulatedBook


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
    for _ in range(60):
        t += 10 * 1_000_000_000
        hdr, lvl, _ = book.advance(t)
        start = 0
        for _e_ms, first, last, end in hdr.tolist():
            assert first == last_u + 1
            last_u = last
            for side, price, size in lvl[start:end].tolist():
                if size:
                    replica[side][price] = size
                else:
                    replica[side].pop(price, None)
            start = end
    assert int(book.ist[model.ORIGIN]) != origin0, "the test must cross a recentring"
    bids, asks = book.depth(10_000)
    assert replica[0] == {int(p): int(q) for p, q in bids}
    assert replica[1] == {int(p): int(q) for p, q in asks}
    assert max(replica[0]) < min(replica[1])  # never crossed
    # queue sizes and order counts stay consistent with the Fenwick index
    for side in range(2):
        assert np.all((book.size[side] > 0) == (book.orders[side] > 0))
        assert model.fenwick_prefix(book.fw[side], 255) == book.orders[side].sum()
