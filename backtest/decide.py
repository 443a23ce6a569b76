"""A stored run's trading decision at any fee and execution, re-derived, never mixed.

A run's trading policy (`models.policy.TradingPolicy`) decides from the expected net
return: class-conditional mean round trips from the training rows, minus the fee. At
another fee the same means give the expected net exactly; at another execution (passive
entries) the means are taken again from the training rows' passive round trips. Either
way the margin is tuned again on the run's stored validation probabilities, with the
validation round trips at that fee and execution. The labels the model was trained on
stay the run's: what the model predicts is the move, the fee only prices it.

`RunContext` holds what that needs: the run's stored probabilities and rules, and its
dataset reloaded (labels, round trips, the rows of each split).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import polars as pl

from backtest.fills import passive_round_trips
from bookcast.errors import UserError
from models.config import TrainConfig
from models.dataset import ModelData, Splits, load_model_data
from models.pipeline import execution_trips, used_splits
from models.policy import EXECUTIONS, TradingPolicy
from models.runs import VALIDATION_FILE, model_splits, read_run, stored_rules

BPS = 1e-4


@dataclass(frozen=True)
class ExecutionReturns:
    """Per dataset row: the gross return of a long and a short sent at the row's time under
    one execution, and whether the order filled (always, for taker orders)."""

    long_gross: np.ndarray
    short_gross: np.ndarray
    long_filled: np.ndarray
    short_filled: np.ndarray

    def net(self, entry_fee_bps: float, exit_fee_bps: float) -> tuple[np.ndarray, np.ndarray]:
        cost = (entry_fee_bps + exit_fee_bps) * BPS
        return self.long_gross - cost, self.short_gross - cost


def execution_returns(data: ModelData, execution: str, latency_ns: int | None
                      ) -> ExecutionReturns:
    """Taker: the one round trip entered after the latency. Maker: the same entry row and
    exit row, the entry resting at the touch (`backtest.fills.passive_round_trips`)."""
    trips = execution_trips(data, latency_ns)
    if execution == "taker":
        return ExecutionReturns(trips.long_gross, trips.short_gross,
                                np.isfinite(trips.long_gross), np.isfinite(trips.short_gross))
    if execution != "maker":
        raise UserError(f"Unknown execution '{execution}'; choose one of {', '.join(EXECUTIONS)}.")
    entry = np.minimum(trips.entry, len(data.touch.ts) - 1)
    long_gross, short_gross, long_filled, short_filled = passive_round_trips(
        data.touch.bid, data.touch.ask, entry, trips.exit)
    return ExecutionReturns(long_gross, short_gross, long_filled, short_filled)


@dataclass
class RunContext:
    """A stored run and its reloaded dataset: everything a re-derived decision needs."""

    run_dir: Path
    meta: dict[str, Any]
    config: TrainConfig
    data: ModelData
    splits: Splits
    test: pl.DataFrame  # predictions.parquet: the model's test probabilities and signal
    baselines: pl.DataFrame  # baseline_predictions.parquet
    validation: pl.DataFrame  # validation_predictions.parquet, every estimator
    _returns: dict = field(default_factory=dict, repr=False)

    @property
    def latency_ns(self) -> int:
        return int(self.meta.get("latency_ns") or self.data.interval_ns)

    def probabilities(self, estimator: str, split: str) -> tuple[np.ndarray, np.ndarray]:
        """(ts, proba) of an estimator ('model' or a baseline) on 'val' or 'test'."""
        if split == "val":
            frame = self.validation.filter(pl.col("estimator") == estimator)
        elif estimator == "model":
            frame = self.test
        else:
            frame = self.baselines.filter(pl.col("baseline") == estimator)
        frame = frame.sort("ts")
        ts = frame["ts"].dt.epoch("ns").to_numpy()
        return ts, frame.select("p_down", "p_flat", "p_up").to_numpy()

    def rows(self, ts: np.ndarray) -> np.ndarray:
        pos = np.searchsorted(self.data.ts, ts)
        if np.any(pos >= len(self.data.ts)) or np.any(self.data.ts[np.minimum(
                pos, len(self.data.ts) - 1)] != ts):
            raise UserError(f"The predictions of run {self.meta['run_id']} name times the "
                            "features dataset does not hold; the data changed since the run.")
        return pos

    def returns(self, execution: str, latency_ns: int | None = None) -> ExecutionReturns:
        latency = self.latency_ns if latency_ns is None else int(latency_ns)
        key = (execution, latency)
        if key not in self._returns:
            self._returns[key] = execution_returns(self.data, execution, latency)
        return self._returns[key]

    def decide(self, estimator: str, fee_bps: float, execution: str = "taker", *,
               entry_fee_bps: float | None = None, latency_ns: int | None = None
               ) -> tuple[np.ndarray, np.ndarray]:
        """(test ts, signal) of `estimator`'s trading policy re-derived at `fee_bps` per side
        (`entry_fee_bps` for a passive entry, default the same), `execution` and latency
        (default the run's). At the run's own fee, taker execution and latency this is the
        stored decision itself."""
        entry_fee = fee_bps if entry_fee_bps is None else float(entry_fee_bps)
        per_side = (entry_fee + fee_bps) / 2.0  # the policy's cost is both legs' sum
        latency = self.latency_ns if latency_ns is None else int(latency_ns)
        _, _, stored = stored_rules(self.meta, estimator)
        ts_test, p_test = self.probabilities(estimator, "test")
        same = execution == stored.execution and latency == self.latency_ns
        if same and per_side == stored.fee_bps:
            return ts_test, stored.signals(p_test)
        returns = self.returns(execution, latency)
        tr = self.splits.train
        if same:
            policy = stored.at_fee(per_side)
        else:
            policy = TradingPolicy.fit(self.data.y[tr], returns.long_gross[tr],
                                       returns.short_gross[tr], per_side, execution,
                                       returns.long_filled[tr], returns.short_filled[tr])
        ts_val, p_val = self.probabilities(estimator, "val")
        va = self.rows(ts_val)
        long_net, short_net = returns.net(entry_fee, fee_bps)
        policy.tune(p_val, long_net[va], short_net[va])
        return ts_test, policy.signals(p_test)


def find_run_dir(root: Path | None, run: str) -> tuple[Path, Path]:
    """(run directory, data root) of `--run ID` (under root/runs) or `--run PATH` (a run
    directory anywhere: its data root is the folder holding its runs/)."""
    from bookcast.paths import data_root, runs_dir

    as_path = Path(run)
    if (as_path / "run.json").is_file():
        run_dir = as_path.resolve()
        return run_dir, (Path(root) if root is not None else run_dir.parent.parent)
    base = data_root(root)
    candidate = runs_dir(base) / run
    if run and "/" not in run and (candidate / "run.json").is_file():
        return candidate, base
    known = sorted(p.name for p in runs_dir(base).glob("*") if (p / "run.json").is_file())
    hint = f" known runs: {', '.join(known[-10:])}" if known else " there are no runs yet"
    raise UserError(f"Unknown run '{run}' under {runs_dir(base)};{hint}.")


def load_context(run_dir: Path, root: Path, cache: dict | None = None) -> RunContext:
    """Reload a run's dataset as it was trained (same labels, same split rows)."""
    meta = read_run(run_dir)
    if not (run_dir / VALIDATION_FILE).is_file() or "rules" not in meta:
        raise UserError(f"The run {meta.get('run_id', run_dir.name)} has no stored validation "
                        "probabilities or policies (an older bookcast wrote it); retrain it "
                        "with `bookcast train` to re-derive its decision.")
    config = TrainConfig.from_dict(meta["config"])
    key = (meta["venue"], meta["symbol"], meta["horizon_ns"], meta["feature_set"],
           meta["levels"], float(meta["fee_bps"]))
    data = None if cache is None else cache.get(key)
    if data is None:
        data = load_model_data(root, meta["horizon_ns"], feature_set=meta["feature_set"],
                               venue=meta["venue"], symbol=meta["symbol"],
                               levels=meta["levels"], fee_bps=meta["fee_bps"],
                               price_columns=meta.get("price_level_features"))
        if cache is not None:
            cache[key] = data
    splits = used_splits(data, model_splits(data, config), config)

    def read(name: str) -> pl.DataFrame:
        try:
            return pl.read_parquet(run_dir / name)
        except Exception as exc:  # a damaged file is the user's input
            raise UserError(f"The file {run_dir / name} cannot be read ({exc}).") from None

    return RunContext(run_dir, meta, config, data, splits, read("predictions.parquet"),
                      read("baseline_predictions.parquet"), read(VALIDATION_FILE))


def run_info(run_dir: Path) -> dict[str, Any]:
    try:
        return json.loads((run_dir / "run.json").read_text())
    except (OSError, json.JSONDecodeError) as exc:
        raise UserError(f"The file {run_dir / 'run.json'} cannot be read ({exc}).") from None
