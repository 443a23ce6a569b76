"""The micro-price of Stoikov (2018), estimated on training rows only.

The micro-price is mid + G(I, S): the expected mid price in the far future given
the level-1 imbalance I = bid_sz / (bid_sz + ask_sz) and the spread S in ticks.
G is estimated from a Markov chain over discretised (S, I) states, symmetrised
(imbalance i -> 1 - i with the mid move negated), exactly as in the paper:

    Q[x, y] = P(mid unchanged, next state y | x)
    T[x, y] = P(mid moved,     next state y | x)
    g[x]    = E[dM 1{mid moved} | x]              (dM in ticks, |dM| <= 1 tick)
    G1 = (1 - Q)^-1 g,   B = (1 - Q)^-1 T,   G = sum_{i < iterations} B^i G1

`fit_microprice` takes a training slice and returns a `MicropriceTable`;
`microprice_expr` applies it to any rows. Fitting sees only the rows it is given.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import polars as pl

from bookcast.errors import UserError


@dataclass(frozen=True)
class MicropriceTable:
    tick_size: float
    n_imbalance: int
    n_spread: int
    adjustment_ticks: list[list[float]]  # [spread_ticks - 1][imbalance bucket]
    transitions_used: int

    def to_json(self) -> dict[str, object]:
        return {
            "tick_size": self.tick_size, "n_imbalance": self.n_imbalance,
            "n_spread": self.n_spread, "adjustment_ticks": self.adjustment_ticks,
            "transitions_used": self.transitions_used,
        }

    @classmethod
    def from_json(cls, data: dict[str, object]) -> MicropriceTable:
        return cls(
            tick_size=float(data["tick_size"]),  # type: ignore[arg-type]
            n_imbalance=int(data["n_imbalance"]),  # type: ignore[call-overload]
            n_spread=int(data["n_spread"]),  # type: ignore[call-overload]
            adjustment_ticks=[list(map(float, row)) for row in data["adjustment_ticks"]],  # type: ignore[attr-defined]
            transitions_used=int(data["transitions_used"]),  # type: ignore[call-overload]
        )


def _state_columns(tick_size: float, n_imbalance: int) -> list[pl.Expr]:
    bs, as_ = pl.col("best_bid_sz"), pl.col("best_ask_sz")
    imbalance = bs / (bs + as_)
    return [
        ((pl.col("best_ask") - pl.col("best_bid")) / tick_size).round(0).cast(pl.Int64)
        .alias("_spread_ticks"),
        (imbalance * n_imbalance).floor().clip(0, n_imbalance - 1).cast(pl.Int64)
        .alias("_imb_bucket"),
    ]


def fit_microprice(
    train: pl.DataFrame,
    *,
    tick_size: float,
    interval_ns: int,
    n_imbalance: int = 10,
    n_spread: int = 2,
    iterations: int = 6,
) -> MicropriceTable:
    """Estimate G(I, S) from consecutive training rows (`ts`, best bid/ask and sizes, `gap`)."""
    if tick_size <= 0:
        raise UserError(f"The tick size {tick_size} is not positive; the snapshot metadata is wrong.")
    gap = pl.col("gap").fill_null(False) if "gap" in train.columns else pl.lit(False)
    n_states = n_spread * n_imbalance
    pairs = (
        train.lazy()
        .sort("ts")
        .with_columns(*_state_columns(tick_size, n_imbalance), gap.alias("_gap"),
                      ((pl.col("best_bid") + pl.col("best_ask")) / 2).alias("_mid"))
        .with_columns(
            pl.col("_spread_ticks").shift(-1).alias("_next_spread"),
            pl.col("_imb_bucket").shift(-1).alias("_next_bucket"),
            # mid moves come in half ticks
            ((pl.col("_mid").shift(-1) - pl.col("_mid")) / tick_size * 2).round(0)
            .alias("_dm_half_ticks"),
            (
                ((pl.col("ts").shift(-1) - pl.col("ts")).dt.total_nanoseconds() == interval_ns)
                & ~pl.col("_gap").shift(-1).fill_null(True)
            ).alias("_consecutive"),
        )
        .filter(
            pl.col("_consecutive")
            & pl.col("_spread_ticks").is_between(1, n_spread)
            & pl.col("_next_spread").is_between(1, n_spread)
            & (pl.col("_dm_half_ticks").abs() <= 2)
        )
        .select(
            ((pl.col("_spread_ticks") - 1) * n_imbalance + pl.col("_imb_bucket")).alias("x"),
            ((pl.col("_next_spread") - 1) * n_imbalance + pl.col("_next_bucket")).alias("y"),
            (pl.col("_dm_half_ticks") / 2).alias("dm"),
        )
        .collect()
    )
    x, y, dm = (pairs[c].to_numpy() for c in ("x", "y", "dm"))

    def mirror(state: np.ndarray) -> np.ndarray:
        spread_part, bucket = np.divmod(state, n_imbalance)
        return spread_part * n_imbalance + (n_imbalance - 1 - bucket)

    # Symmetrise: a book with the sides swapped moves the other way.
    x, y, dm = np.concatenate([x, mirror(x)]), np.concatenate([y, mirror(y)]), np.concatenate([dm, -dm])
    visits = np.bincount(x, minlength=n_states).astype(float)
    moved = dm != 0
    q = np.zeros((n_states, n_states))
    t = np.zeros((n_states, n_states))
    np.add.at(q, (x[~moved], y[~moved]), 1.0)
    np.add.at(t, (x[moved], y[moved]), 1.0)
    g = np.bincount(x[moved], weights=dm[moved], minlength=n_states).astype(float)
    seen = visits > 0
    q[seen] /= visits[seen, None]
    t[seen] /= visits[seen, None]
    g[seen] /= visits[seen]
    # States that never move the mid make 1 - Q singular; the pseudo-inverse gives them G = 0.
    inv = np.linalg.pinv(np.eye(n_states) - q)
    g1 = inv @ g
    b = inv @ t
    total, term = g1.copy(), g1
    for _ in range(iterations - 1):
        term = b @ term
        total += term
    return MicropriceTable(
        tick_size=float(tick_size), n_imbalance=n_imbalance, n_spread=n_spread,
        adjustment_ticks=total.reshape(n_spread, n_imbalance).tolist(),
        transitions_used=len(pairs),
    )


def microprice_expr(table: MicropriceTable) -> pl.Expr:
    """mid + G(I, S) * tick; states outside the fitted spreads get G = 0 (the mid)."""
    flat = [v for row in table.adjustment_ticks for v in row]
    spread_ticks, bucket = _state_columns(table.tick_size, table.n_imbalance)
    state = (spread_ticks - 1) * table.n_imbalance + bucket
    adjustment = (
        pl.when(spread_ticks.is_between(1, table.n_spread))
        .then(state.replace_strict(list(range(len(flat))), flat, default=0.0,
                                   return_dtype=pl.Float64))
        .otherwise(0.0)
    )
    mid = (pl.col("best_bid") + pl.col("best_ask")) / 2
    return (mid + adjustment * table.tick_size).alias("microprice")
