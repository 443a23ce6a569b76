"""The non-overlapping picker behind the imbalance and random baselines equals the plain
rule: take candidates in order, keep one when its hold meets no kept one's."""

from __future__ import annotations

import numpy as np

from backtest.signals import _pick_non_overlapping


def plain_pick(order, ts, hold_ns, n_max, last_entry_ts):
    kept: list[int] = []
    for i in order:
        if len(kept) >= n_max:
            break
        if ts[i] > last_entry_ts:
            continue
        # [ts_i, ts_i + hold] against every kept [ts_k, ts_k + hold], on the row grid
        stop = np.searchsorted(ts, ts[i] + hold_ns, side="right")
        if all(stop <= k or np.searchsorted(ts, ts[k] + hold_ns, side="right") <= i
               for k in kept):
            kept.append(int(i))
    return np.sort(np.array(kept, np.int64))


def test_picker_equals_the_plain_rule_on_irregular_grids():
    rng = np.random.default_rng(11)
    for trial in range(40):
        n = int(rng.integers(5, 400))
        ts = np.cumsum(rng.integers(1, 6, n)).astype(np.int64) * 100
        hold = int(rng.integers(0, 2000))
        order = rng.permutation(n).astype(np.int64)
        if trial % 2:  # candidates may repeat (random rows topping up placed ones)
            order = np.concatenate([order[: n // 2], rng.integers(0, n, n)])
        n_max = int(rng.integers(1, n + 1))
        last = int(ts[-1] - rng.integers(0, 300))
        got = _pick_non_overlapping(order, ts, np.int64(hold), n_max, last)
        np.testing.assert_array_equal(got, plain_pick(order, ts, hold, n_max, last),
                                      err_msg=str(trial))
