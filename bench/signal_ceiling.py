"""The signal ceiling of the realistic simulation: how well could ANY forecaster rank the
moves that pay, and how close do LightGBM and the L1 imbalance rule come on the same rows?

For each seed: the same chain as bench/verdict_proof.py (`bookcast simulate`, replay,
features and fee-aware labels), LightGBM at each horizon; then, independently of
features/ and models/, the simulator's own path is rebuilt from the seed (the model
generator's stream and the 10 s chunks of `simulate_session`, so the book is the same
event for event), and at a random sample of test rows the whole hidden state of the
queue model (every queue, every order count, the regime's rates) is copied and run
forward `--paths` times with fresh random numbers. The share of those futures in which
the round trip pays is a Monte-Carlo estimate of the true P(up pays) and P(down pays);
its average precision against the realised labels is the ceiling.

Two ceilings. By default the futures start from the state of the entry diff, the book
the snapshot holds, with everything a collector cannot see in it (order counts, exact
queues): what a perfect model of this market could say from the book. A live forecaster
also has the trades of the last ~100 ms, which this ceiling does not use; `--every-event`
adds futures from the state at the snapshot time itself (every event before it, even the
diffs still on the wire): an upper bound on anything the collector's data can tell.
Monte-Carlo noise only lowers a ceiling (the half-futures column shows by how much), and
a sample of test rows leaves a sampling error (the bootstrap interval in brackets).

The round trip is DESIGN.md's, recomputed here from the model's touch: a snapshot at T
holds the book of the last 100 ms diff sent before T (the wire's latency is a few ms), so
a long buys at that diff's ask and sells at the bid of the diff sent h later, both taker
fees against the entry price. The bench checks this recomputation against the pipeline's
labels on every test row and prints the agreement.

    python bench/signal_ceiling.py --seeds 7,8,9
    python bench/signal_ceiling.py --quick

Figures in docs/models.md ("The signal ceiling").
"""

from __future__ import annotations

import argparse
import copy
import importlib.util
import shutil
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType

import numpy as np
from numba import njit

# This file's folder shares names with the packages: keep it off the import path.
sys.path = [p for p in sys.path if Path(p).resolve() != Path(__file__).resolve().parent]

from collector.simulator import model  # noqa: E402
from collector.simulator.presets import preset_for, regime_schedule  # noqa: E402
from collector.simulator.protocols import PROTOCOLS  # noqa: E402
from collector.simulator.simulate import (  # noqa: E402
    CHUNK_NS,
    NS,
    SIM_START_NS,
    WARMUP_NS,
    SimulatedBook,
    symbol_rngs,
)

BPS = 1e-4
DIFF_NS = model.DIFF_INTERVAL_NS
SIDES = ("up", "down")


def _verdict_proof() -> ModuleType:
    """bench/verdict_proof.py, for its data chain (one way of building the rows)."""
    spec = importlib.util.spec_from_file_location(
        "verdict_proof", Path(__file__).resolve().parent / "verdict_proof.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


# ---------------------------------------------------------------- the model, run forward


@njit(cache=True)
def _run_discarding(t_end_ns, rng, ist, par, cdf, size, orders, fw, dirty, dirty_list,
                    hdr, lvl, trades):
    """run_until to t_end_ns, throwing its diffs and trades away as buffers fill."""
    while True:
        status = model.run_until(t_end_ns, rng, ist, par, cdf, size, orders, fw, dirty,
                                 dirty_list, hdr, lvl, trades)
        ist[model.N_DIFFS] = 0
        ist[model.N_LEVELS] = 0
        ist[model.N_TRADES] = 0
        if status == model.REACHED_END:
            return


@njit(cache=True)
def _futures(t_ends, n_paths, rng, ist0, par, cdf, size0, orders0, fw0, dirty0, dirty_list0,
             ist, size, orders, fw, dirty, dirty_list, hdr, lvl, trades, out):
    """From one state, `n_paths` futures; out[p, k] = (best bid, best ask) ticks at t_ends[k].

    Each future restarts from the copied state; the times in t_ends are visited in order
    on one future (stopping at one redraws the next waiting time: the same process, as
    the waits are exponential).
    """
    nd = ist0[model.N_DIRTY]
    for p in range(n_paths):
        ist[:] = ist0
        size[:, :] = size0
        orders[:, :] = orders0
        fw[:, :] = fw0
        dirty[:, :] = dirty0
        dirty_list[:nd] = dirty_list0[:nd]
        for k in range(t_ends.shape[0]):
            _run_discarding(t_ends[k], rng, ist, par, cdf, size, orders, fw, dirty, dirty_list,
                            hdr, lvl, trades)
            out[p, k, 0] = ist[model.ORIGIN] + ist[model.BEST_BID]
            out[p, k, 1] = ist[model.ORIGIN] + ist[model.BEST_ASK]


@dataclass
class State:
    """One instant of the queue model: its arrays and the generator's position."""

    ist: np.ndarray
    size: np.ndarray
    orders: np.ndarray
    fw: np.ndarray
    dirty: np.ndarray
    dirty_list: np.ndarray
    rng: np.random.Generator

    @classmethod
    def of(cls, book: SimulatedBook | State) -> State:
        return cls(book.ist.copy(), book.size.copy(), book.orders.copy(), book.fw.copy(),
                   book.dirty.copy(), book.dirty_list.copy(), copy.deepcopy(book.rng))

    @property
    def now_ns(self) -> int:
        return int(self.ist[model.NOW_NS])


class Scratch:
    """Buffers a forward run writes into (its diffs and trades are not needed)."""

    def __init__(self, book: SimulatedBook) -> None:
        self.state = State.of(book)
        self.hdr = np.zeros_like(book.diff_hdr)
        self.lvl = np.zeros_like(book.diff_lvl)
        self.trades = np.zeros_like(book.trades)

    def advance(self, state: State, book: SimulatedBook, t_end_ns: int) -> None:
        """Run `state` itself (with its own generator) to t_end_ns."""
        _run_discarding(t_end_ns, state.rng, state.ist, book.par, book.arrival_cdf,
                        state.size, state.orders, state.fw, state.dirty, state.dirty_list,
                        self.hdr, self.lvl, self.trades)

    def futures(self, state: State, book: SimulatedBook, t_ends: np.ndarray, n_paths: int,
                rng: np.random.Generator) -> np.ndarray:
        out = np.zeros((n_paths, len(t_ends), 2), np.int64)
        s = self.state
        _futures(t_ends, n_paths, rng, state.ist, book.par, book.arrival_cdf, state.size,
                 state.orders, state.fw, state.dirty, state.dirty_list, s.ist, s.size, s.orders,
                 s.fw, s.dirty, s.dirty_list, self.hdr, self.lvl, self.trades, out)
        return out


# ---------------------------------------------------------------- the path, rebuilt


@dataclass
class Ceiling:
    """What the rebuilt path says at the sampled rows and along the whole session."""

    diff_ns: np.ndarray      # send time of every diff (ns)
    touch: np.ndarray        # [diff, 4]: best bid ticks, its lots, best ask ticks, lots
    # sampled ts -> [paths, horizons, 2] touch ticks at the exit diff, from the state
    futures: dict[int, np.ndarray]     # at ts itself (every event before the snapshot)
    futures_held: dict[int, np.ndarray]  # at the entry diff (the book the snapshot holds)


def rebuild(venue: str, symbol: str, scenario: str, hours: float, seed: int,
            sample_ts: np.ndarray, horizons_ns: list[int], n_paths: int, mc_seed: int,
            every_event: bool = False) -> Ceiling:
    """The session `bookcast simulate` wrote for (venue, symbol, seed), event for event,
    with `n_paths` futures from the state at each sampled snapshot's entry diff (and, with
    `every_event`, from the state at the snapshot time itself)."""
    schedule = regime_schedule(preset_for(venue, symbol), scenario, hours)
    if len(schedule) != 1:
        raise SystemExit("The ceiling needs one regime (the futures assume fixed rates).")
    start_ns = SIM_START_NS
    end_ns = start_ns + round(hours * 3600 * NS)
    model_rng, _ = symbol_rngs(seed, symbol)
    book = SimulatedBook(schedule[0].preset, model_rng, start_ns - WARMUP_NS)
    book.advance(start_ns)
    after = PROTOCOLS[venue].snapshot_after_ns
    snap_ns = min(start_ns + after, end_ns) if after is not None else None
    scratch = Scratch(book)
    mc_rng = np.random.default_rng(np.random.SeedSequence([mc_seed, seed]))
    pending = sorted(int(t) for t in sample_ts)
    headers, futures, futures_held = [], {}, {}
    saved = [State.of(book)]  # the main path's state at the last two chunk starts

    def state_at(t_ns: int) -> State:
        """The main path's state at t_ns: a saved chunk start run on its own generator to
        t_ns, which replays the main path's events up to t_ns exactly (a stop only redraws
        the wait after it)."""
        start = next(x for x in reversed(saved) if x.now_ns <= t_ns)
        state = State.of(start)
        scratch.advance(state, book, t_ns)
        return state

    t = start_ns
    while t < end_ns:  # the stops of simulate_session (no regime switches)
        t_next = min(x for x in (t + CHUNK_NS, end_ns, snap_ns) if x is not None and x > t)
        while pending and pending[0] <= t_next:
            ts = pending.pop(0)
            entry_ns = _last_diff_before(ts)
            # the label's exit diff: sent h after the entry diff
            t_ends = np.array([entry_ns + h for h in horizons_ns], np.int64)
            if every_event:
                futures[ts] = scratch.futures(state_at(ts), book, t_ends, n_paths, mc_rng)
            futures_held[ts] = scratch.futures(state_at(entry_ns), book, t_ends, n_paths,
                                               mc_rng)
        headers.append(book.advance(t_next)[0])
        saved = [saved[-1], State.of(book)]
        t = t_next
    hdr = np.concatenate(headers)
    return Ceiling(hdr[:, 0] * 1_000_000, hdr[:, 4:8], futures, futures_held)


def _last_diff_before(ts: int) -> int:
    """Send time of the last diff a snapshot at `ts` holds (diffs every 100 ms from start)."""
    k = (ts - SIM_START_NS - 1) // DIFF_NS
    return SIM_START_NS + k * DIFF_NS


def touch_at(ceiling: Ceiling, times_ns: np.ndarray) -> np.ndarray:
    """The model's touch [rows, 4] as of the diff sent last at or before each time."""
    k = np.searchsorted(ceiling.diff_ns, times_ns, side="right") - 1
    return ceiling.touch[np.maximum(k, 0)]


def round_trip_labels(bid_e: np.ndarray, ask_e: np.ndarray, bid_x: np.ndarray,
                      ask_x: np.ndarray, fee_bps: float) -> np.ndarray:
    """+1 long pays, -1 short pays, 0 neither (DESIGN.md's inequality, in ticks)."""
    cost = 2.0 * fee_bps * BPS
    up = bid_x / ask_e - 1.0 > cost
    down = 1.0 - ask_x / bid_e > cost
    return np.where(up, 1, np.where(down, -1, 0))


def future_labels(futures: dict[int, np.ndarray], ts: np.ndarray, horizon: int,
                  entry: np.ndarray, fee_bps: float) -> np.ndarray:
    """[rows, paths] label of each future at horizon index `horizon` (the entry touch,
    [rows, 4], is the same in all futures of a row)."""
    fut = np.stack([futures[int(t)][:, horizon] for t in ts])  # [rows, paths, 2]
    return round_trip_labels(entry[:, None, 0], entry[:, None, 2], fut[..., 0], fut[..., 1],
                             fee_bps)


# ---------------------------------------------------------------- scoring


def average_precision(truth: np.ndarray, score: np.ndarray) -> float:
    from sklearn.metrics import average_precision_score

    return float(average_precision_score(truth, score)) if truth.any() else float("nan")


def known_probability_ratio(p_hat: np.ndarray, n_paths: int, rng: np.random.Generator,
                            rounds: int = 200) -> tuple[float, float]:
    """(sd of the true P across rows, expected AP / base rate of a forecaster that knows it).

    A share of n futures is the true P plus binomial noise of variance P(1-P)/n, so the
    true P's variance across rows is var(p_hat) - mean(p_hat (1 - p_hat)) / (n - 1). The
    shares, shrunk about their mean to that spread, stand in for the true P: labels drawn
    from them `rounds` times give the AP that knowing P would score on rows like these,
    free of both the futures' and the labels' sampling noise.
    """
    spread = max(float(np.var(p_hat) - np.mean(p_hat * (1 - p_hat)) / (n_paths - 1)), 0.0)
    mean = float(p_hat.mean())
    if spread == 0.0 or np.var(p_hat) == 0.0:
        return 0.0, 1.0
    p = np.clip(mean + np.sqrt(spread / np.var(p_hat)) * (p_hat - mean), 0.0, 1.0)
    ratios = []
    for _ in range(rounds):
        truth = rng.random(len(p)) < p
        if truth.any():
            ratios.append(average_precision(truth, p) / truth.mean())
    return float(np.sqrt(spread)), float(np.mean(ratios))


def bootstrap_ratio(truth: np.ndarray, score: np.ndarray, rng: np.random.Generator,
                    rounds: int = 400) -> tuple[float, float]:
    """95 % interval of AP / base rate over rows resampled with replacement."""
    n = len(truth)
    ratios = []
    for _ in range(rounds):
        idx = rng.integers(0, n, n)
        t = truth[idx]
        if t.any():
            ratios.append(average_precision(t, score[idx]) / t.mean())
    return float(np.quantile(ratios, 0.025)), float(np.quantile(ratios, 0.975))


def one_seed(root: Path, seed: int, args: argparse.Namespace) -> dict:
    import polars as pl

    from models.config import TrainConfig
    from models.runs import train_run

    started = time.monotonic()
    markets, horizons = _verdict_proof().simulate_and_build(root, args.preset, seed, args)
    if len(markets) != 1:
        raise SystemExit(f"One market at a time, not {markets}.")
    venue, symbol = markets[0]
    preds: dict[int, pl.DataFrame] = {}
    for h in horizons:
        run = train_run(root, TrainConfig(model="lightgbm", horizon_ns=h, fee_bps=args.fee_bps,
                                          seed=seed, venue=venue, symbol=symbol))
        model_rows = pl.read_parquet(run / "predictions.parquet")
        rule = (pl.read_parquet(run / "baseline_predictions.parquet")
                .filter(pl.col("baseline") == "imbalance_rule"))
        preds[h] = (model_rows.select("ts", "y", "p_up", "p_down")
                    .join(rule.select("ts", rule_up="p_up", rule_down="p_down"), on="ts")
                    .with_columns(pl.col("ts").dt.epoch("ns")).drop_nulls("y"))
    trained = time.monotonic()
    common = sorted(set.intersection(*(set(p["ts"].to_list()) for p in preds.values())))
    pick = np.random.default_rng(seed).choice(len(common), min(args.samples, len(common)),
                                              replace=False)
    sample_ts = np.sort(np.asarray(common, np.int64)[pick])
    ceiling = rebuild(venue, symbol, args.preset, args.hours, seed, sample_ts, horizons,
                      args.paths, args.mc_seed, args.every_event)
    out = {"seed": seed, "rows": len(sample_ts), "horizons": {}, "train_s": trained - started,
           "ceiling_s": time.monotonic() - trained}
    boot = np.random.default_rng(0)
    for k, h in enumerate(horizons):
        frame = preds[h]
        ts = frame["ts"].to_numpy()
        # the recomputed round trip against the pipeline's labels, on every test row
        entry = touch_at(ceiling, np.array([_last_diff_before(int(t)) for t in ts]))
        exit_ = touch_at(ceiling, np.array([_last_diff_before(int(t)) + h for t in ts]))
        mine = round_trip_labels(entry[:, 0], entry[:, 2], exit_[:, 0], exit_[:, 2],
                                 args.fee_bps)
        agree = float(np.mean(mine == frame["y"].to_numpy()))
        if agree < 1.0:  # the futures would start from another book than the labels saw
            raise SystemExit(f"seed {seed}: the rebuilt path's labels agree with the "
                             f"pipeline's on only {agree:.2%} of the test rows at "
                             f"{h / NS:g} s; the simulator and this bench disagree.")
        rows = frame.filter(pl.col("ts").is_in(sample_ts.tolist())).sort("ts")
        y = rows["y"].to_numpy()
        e = touch_at(ceiling, np.array([_last_diff_before(int(t)) for t in rows["ts"]]))
        held = future_labels(ceiling.futures_held, rows["ts"].to_numpy(), k, e, args.fee_bps)
        seen = (future_labels(ceiling.futures, rows["ts"].to_numpy(), k, e, args.fee_bps)
                if args.every_event else None)
        imbalance = (e[:, 1] - e[:, 3]) / (e[:, 1] + e[:, 3])  # the model's own L1 imbalance
        half = args.paths // 2
        res = {"agree": agree, "test_rows": len(ts)}
        for side, word in ((1, "up"), (-1, "down")):
            truth = y == side
            scores = {"held_half": (held[:, :half] == side).mean(axis=1),
                      "held": (held == side).mean(axis=1),
                      "lightgbm": rows[f"p_{word}"].to_numpy(),
                      "rule": rows[f"rule_{word}"].to_numpy(),
                      "l1": imbalance * side}
            if seen is not None:
                scores["ceiling"] = (seen == side).mean(axis=1)
            res[word] = {"base": float(truth.mean()),
                         **{n: average_precision(truth, s) for n, s in scores.items()},
                         **({"ceiling_ci": bootstrap_ratio(truth, scores["ceiling"], boot)}
                            if seen is not None else {}),
                         "held_ci": bootstrap_ratio(truth, scores["held"], boot),
                         "lightgbm_ci": bootstrap_ratio(truth, scores["lightgbm"], boot),
                         "lightgbm_full": average_precision(frame["y"].to_numpy() == side,
                                                            frame[f"p_{word}"].to_numpy()),
                         "base_full": float(np.mean(frame["y"].to_numpy() == side)),
                         "mean_p": float(scores["held"].mean()),
                         "known": known_probability_ratio(scores["held"], args.paths, boot)}
        out["horizons"][h] = res
    return out


def summarise(results: list[dict], args: argparse.Namespace) -> None:
    every = " | ceiling, every event" if args.every_event else ""
    print(f"\n### preset `{args.preset}`, {args.hours:g} h BTCUSDT, {args.interval} grid, labels "
          f"at {args.fee_bps:g} bps a side: average precision / base rate on sampled test rows "
          f"({args.paths} futures per row)\n")
    print("| seed | horizon | side | rows | base | mean P of the futures | sd of the true P | "
          "ceiling | ceiling, half the futures | knowing P, expected"
          f"{every} | LightGBM | imbalance rule | "
          "L1 of the model's touch | LightGBM, whole test split |")
    print("|---:|---:|---|---:|---:|---:|---:|---:|---:|---:|" + "---:|" * (4 + bool(every)))
    for r in results:
        for h, res in r["horizons"].items():
            for side in SIDES:
                s = res[side]
                b = s["base"]

                def ratio(name: str, s: dict = s, b: float = b) -> str:
                    lo, hi = s[f"{name}_ci"]
                    return f"{s[name] / b:.2f}x [{lo:.2f}, {hi:.2f}]"

                seen = f" | {ratio('ceiling')}" if args.every_event else ""
                print(f"| {r['seed']} | {h / NS:g} s | {side} | {r['rows']} | {b:.3f} | "
                      f"{s['mean_p']:.3f} | {s['known'][0]:.3f} | **{ratio('held')}** | "
                      f"{s['held_half'] / b:.2f}x | {s['known'][1]:.2f}x{seen} | "
                      f"{ratio('lightgbm')} | "
                      f"{s['rule'] / b:.2f}x | {s['l1'] / b:.2f}x | "
                      f"{s['lightgbm_full'] / s['base_full']:.2f}x |")
    print()
    for r in results:
        agree = ", ".join(f"{h / NS:g} s {res['agree']:.4%} of {res['test_rows']}"
                          for h, res in r["horizons"].items())
        print(f"seed {r['seed']}: recomputed labels agree with the pipeline's on {agree} test "
              f"rows; {r['train_s']:.0f} s data and LightGBM, {r['ceiling_s']:.0f} s ceiling.")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    _verdict_proof().add_data_options(parser)
    parser.add_argument("--samples", type=int, default=400, help="Test rows given futures.")
    parser.add_argument("--paths", type=int, default=100, help="Futures per sampled row.")
    parser.add_argument("--mc-seed", type=int, default=12345)
    parser.add_argument("--every-event", action="store_true",
                        help="Also run futures from the state at the snapshot time itself.")
    parser.add_argument("--quick", action="store_true",
                        help="30 minutes, 150 rows, 50 futures: a smoke run (~2 min loaded).")
    parser.add_argument("--keep", type=Path, default=None, help="Keep each seed's data here.")
    args = parser.parse_args()
    args.captures = None
    if args.quick:
        args.hours, args.samples, args.paths = 0.5, 150, 50
    if "," in args.symbols:
        raise SystemExit("One symbol at a time.")
    results = []
    for seed in (int(s) for s in args.seeds.split(",")):
        folder = (args.keep / f"{args.preset}-seed{seed}" if args.keep
                  else Path(tempfile.mkdtemp(prefix="signal-ceiling-")))
        folder.mkdir(parents=True, exist_ok=True)
        try:
            results.append(one_seed(folder, seed, args))
            summarise(results[-1:], args)  # each seed as it ends; all of them at the end
            sys.stdout.flush()
        finally:
            if args.keep is None:
                shutil.rmtree(folder, ignore_errors=True)
    summarise(results, args)


if __name__ == "__main__":
    main()
