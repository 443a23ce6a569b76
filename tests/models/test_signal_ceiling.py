"""bench/signal_ceiling.py's ceiling rests on one claim: the session it rebuilds from the
seed is the one `bookcast simulate` wrote, event for event, so its futures start from the
very book the labels were computed on. Checked against the capture's replay and the
pipeline's round trip (features.labels), with the timing mutated to show the check bites,
and the futures checked to be probabilities of the right thing."""

from __future__ import annotations

import importlib.util
import subprocess
import sys
from pathlib import Path
from types import ModuleType

import numpy as np
import pytest

BOOKCAST = str(Path(sys.executable).parent / "bookcast")
PROJECT = Path(__file__).resolve().parents[2]
NS = 1_000_000_000
HOURS = 0.05  # three simulated minutes
SEED = 5
FEE_BPS = 1.0
HORIZONS = [NS, 10 * NS]


@pytest.fixture(scope="module")
def ceiling() -> ModuleType:
    spec = importlib.util.spec_from_file_location("bench_signal_ceiling",
                                                  PROJECT / "bench/signal_ceiling.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def replayed_book(tmp_path_factory: pytest.TempPathFactory) -> dict[str, np.ndarray]:
    """ts, gap, best bid and ask of the replayed capture (1 s grid)."""
    import polars as pl

    from collector.replay import replay_captures

    root = tmp_path_factory.mktemp("ceiling")
    subprocess.run([BOOKCAST, "simulate", "--hours", str(HOURS), "--symbols", "BTCUSDT",
                    "--seed", str(SEED), "--out", str(root / "captures")], check=True,
                   capture_output=True, timeout=600)
    replay_captures(sorted((root / "captures").rglob("*.jsonl.gz")), root, interval_ns=NS,
                    depth=100)
    frame = (pl.read_parquet(sorted((root / "snapshots").rglob("*.parquet")))
             .sort("ts")
             .select(pl.col("ts").dt.epoch("ns"), pl.col("gap").fill_null(False),
                     pl.col("bid_px").list.first().cast(pl.Float64).alias("bid"),
                     pl.col("ask_px").list.first().cast(pl.Float64).alias("ask")))
    return {c: frame[c].to_numpy() for c in frame.columns}


@pytest.fixture(scope="module")
def rebuilt(ceiling: ModuleType, replayed_book: dict[str, np.ndarray]) -> tuple:
    sample = replayed_book["ts"][[40, 90]]
    return sample, ceiling.rebuild("binance-spot", "BTCUSDT", "default", HOURS, SEED, sample,
                                   HORIZONS, 64, 1, every_event=True)


def pipeline_labels(book: dict[str, np.ndarray], horizon_ns: int) -> np.ndarray:
    from features.labels import round_trips

    return round_trips(book["ts"], book["gap"], book["bid"], book["ask"],
                       horizon_ns).labels(FEE_BPS)


def rebuilt_labels(ceiling: ModuleType, result: object, ts: np.ndarray, horizon_ns: int,
                   held_shift_ns: int = 0) -> np.ndarray:
    entry_ns = np.array([ceiling._last_diff_before(int(t)) for t in ts]) + held_shift_ns
    e = ceiling.touch_at(result, entry_ns)
    x = ceiling.touch_at(result, entry_ns + horizon_ns)
    return ceiling.round_trip_labels(e[:, 0], e[:, 2], x[:, 0], x[:, 2], FEE_BPS)


@pytest.mark.parametrize("horizon_ns", HORIZONS)
def test_the_rebuilt_session_gives_the_pipelines_labels_on_every_row(
        ceiling, replayed_book, rebuilt, horizon_ns):
    _, result = rebuilt
    want = pipeline_labels(replayed_book, horizon_ns)
    ok = np.isfinite(want)
    assert ok.sum() > 100
    got = rebuilt_labels(ceiling, result, replayed_book["ts"][ok], horizon_ns)
    assert np.array_equal(got, want[ok])
    assert (want[ok] != 0).sum() >= 5  # paying moves are among the rows compared
    # the check bites: a snapshot assumed to hold the diff one step later disagrees
    shifted = rebuilt_labels(ceiling, result, replayed_book["ts"][ok], horizon_ns,
                             held_shift_ns=ceiling.DIFF_NS)
    assert not np.array_equal(shifted, want[ok])


def test_futures_are_the_touch_one_horizon_after_the_entry_diff(ceiling, replayed_book,
                                                               rebuilt):
    sample, result = rebuilt
    for ts in sample:
        for futures in (result.futures_held[int(ts)], result.futures[int(ts)]):
            assert futures.shape == (64, len(HORIZONS), 2)
            bid, ask = futures[..., 0], futures[..., 1]
            assert (ask > bid).all()  # an uncrossed book in every future
            # futures differ from one another, and spread more over 10 s than over 1 s
            assert np.std(bid[:, 1]) > np.std(bid[:, 0]) > 0
        # the held book's futures start where the snapshot's book is: after 1 s the
        # median future's mid is within a few bps of the entry mid
        entry = ceiling.touch_at(result, np.array([ceiling._last_diff_before(int(ts))]))[0]
        entry_mid = (entry[0] + entry[2]) / 2
        mid_1s = np.median(result.futures_held[int(ts)][:, 0].mean(axis=1))
        assert abs(mid_1s / entry_mid - 1) < 5e-4
