"""Plotly figures of the dashboard: pure functions of dataframes and dicts.

Nothing here imports Streamlit or reads files, so every figure can be built and
checked in a plain test. Times arrive as int64 ns since the epoch (UTC) and are
turned into datetimes only for the axes.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import plotly.graph_objects as go
import polars as pl
from plotly.subplots import make_subplots

BUY_COLOUR = "#16a34a"  # buyer was the aggressor
SELL_COLOUR = "#dc2626"
BID_COLOUR = "#22d3ee"
ASK_COLOUR = "#f472b6"
CLASS_NAMES = ("down", "flat", "up")


def _times(ns: np.ndarray | pl.Series) -> np.ndarray:
    return np.asarray(ns, dtype=np.int64).astype("datetime64[ns]")


def _layout(fig: go.Figure, title: str, height: int = 420, **kwargs: Any) -> go.Figure:
    fig.update_layout(title=title, height=height, margin={"l": 60, "r": 20, "t": 50, "b": 40},
                      legend={"orientation": "h", "y": -0.15}, **kwargs)
    return fig


def empty_figure(title: str, message: str) -> go.Figure:
    fig = go.Figure()
    fig.add_annotation(text=message, showarrow=False, x=0.5, y=0.5, xref="paper", yref="paper")
    fig.update_xaxes(visible=False)
    fig.update_yaxes(visible=False)
    return _layout(fig, title, height=250)


# ------------------------------------------------------------------ Data page


def coverage_figure(coverage: pl.DataFrame, missing: pl.DataFrame | None = None) -> go.Figure:
    """A timeline per (venue, symbol): green where the grid has rows, red only over the
    stretches where grid points have no row (a resynchronisation row alone is not a hole:
    the book was re-synced and every grid point still has its row)."""
    if coverage.is_empty():
        return empty_figure("Coverage", "no snapshots")
    fig = go.Figure()
    for row in coverage.iter_rows(named=True):
        market = f"{row['venue']} {row['symbol']}"
        fig.add_trace(go.Scatter(
            x=[row["first_ts"], row["last_ts"]], y=[market, market], mode="lines",
            line={"width": 14, "color": BUY_COLOUR}, name="rows on every grid point",
            showlegend=False, hoverinfo="text",
            hovertext=f"{market} {row['date']}: {row['rows']:,} rows, "
                      f"{row['gap_rows'] or 0} resync rows, "
                      f"{row['missing_grid_points'] or 0} grid points without a row"))
    holes = missing if missing is not None else pl.DataFrame()
    for row in holes.iter_rows(named=True):
        market = f"{row['venue']} {row['symbol']}"
        fig.add_trace(go.Scatter(
            x=_times(np.array([row["from_ns"], row["to_ns"]])), y=[market, market],
            mode="lines", line={"width": 14, "color": SELL_COLOUR},
            name="grid points without a row", showlegend=False, hoverinfo="text",
            hovertext=f"{market}: {row['missing']:,} grid points without a row"))
    title = ("Coverage (green: a row on every grid point; red: grid points without a row)"
             if holes.height else "Coverage: a row on every grid point (no holes)")
    return _layout(fig, title, height=150 + 40 * coverage.select("venue", "symbol").n_unique())


# ------------------------------------------------------------------ Book page


@dataclass
class DepthGrid:
    """Resting size on a (price bin x time column) grid; NaN where nothing rests."""

    times_ns: np.ndarray  # (n_cols,) start of each time column
    prices: np.ndarray  # (n_bins,) centre of each price bin
    size: np.ndarray  # (n_bins, n_cols)
    bin_width: float


def depth_grid(book: pl.DataFrame, max_columns: int = 480, max_price_bins: int = 240,
               tick_size: float | None = None) -> DepthGrid:
    """Resting size per price bin and time column from snapshot rows (both sides).

    A time column shows the last snapshot that falls in it (the book as it stood), so a
    window of any length draws at most `max_columns` columns. Price bins are the tick
    when the visible range has few enough ticks, else an even split of the range.
    """
    if book.is_empty():
        return DepthGrid(np.empty(0, np.int64), np.empty(0), np.empty((0, 0)), 1.0)
    ts = book["ts_ns"].to_numpy()
    n_cols = min(max_columns, len(ts))
    edges = np.linspace(ts[0], ts[-1] + 1, n_cols + 1)
    col_of_row = np.clip(np.searchsorted(edges, ts, side="right") - 1, 0, n_cols - 1)
    # The last row of each column stands for it.
    last_in_col = np.flatnonzero(np.r_[col_of_row[1:] != col_of_row[:-1], True])
    rows = book[last_in_col]
    cols = col_of_row[last_in_col]

    prices, sizes, owners = [], [], []
    for px, sz in (("bid_px", "bid_sz"), ("ask_px", "ask_sz")):
        exploded = rows.select(pl.col(px).alias("p"), pl.col(sz).alias("s"),
                               pl.Series("c", cols)).explode("p", "s").drop_nulls()
        prices.append(exploded["p"].to_numpy())
        sizes.append(exploded["s"].to_numpy())
        owners.append(exploded["c"].to_numpy())
    p, s, c = np.concatenate(prices), np.concatenate(sizes), np.concatenate(owners)
    ok = np.isfinite(p) & np.isfinite(s) & (s > 0)
    p, s, c = p[ok], s[ok], c[ok]
    if p.size == 0:
        return DepthGrid(edges[:-1].astype(np.int64), np.empty(0), np.empty((0, n_cols)), 1.0)
    lo, hi = float(p.min()), float(p.max())
    if tick_size and tick_size > 0 and (hi - lo) / tick_size + 1 <= max_price_bins:
        width = tick_size
    else:
        width = max((hi - lo) / max_price_bins, np.finfo(float).eps)
    n_bins = int(np.floor((hi - lo) / width + 1e-9)) + 1
    b = np.clip(np.floor((p - lo) / width + 0.5).astype(np.int64), 0, n_bins - 1)
    grid = np.zeros((n_bins, n_cols))
    np.add.at(grid, (b, c), s)
    grid[grid == 0] = np.nan
    # Columns no snapshot fell in repeat the book before them (the book did not change).
    filled = np.zeros(n_cols, bool)
    filled[cols] = True
    for j in range(1, n_cols):
        if not filled[j]:
            grid[:, j] = grid[:, j - 1]
    return DepthGrid(edges[:-1].astype(np.int64), lo + width * np.arange(n_bins), grid, width)


def bucket_trades(trades: pl.DataFrame, times_ns: np.ndarray, max_markers: int) -> pl.DataFrame:
    """Trades as given, or summed per (time column, price, side) when there are too many."""
    if trades.height <= max_markers or len(times_ns) == 0:
        return trades
    col = np.clip(np.searchsorted(times_ns, trades["ts_ns"].to_numpy(), side="right") - 1,
                  0, len(times_ns) - 1)
    return (trades.with_columns(ts_ns=pl.Series(times_ns[col]))
            .group_by("ts_ns", "price", "side").agg(pl.col("size").sum())
            .sort("ts_ns"))


def depth_heatmap(grid: DepthGrid, top: pl.DataFrame, trades: pl.DataFrame,
                  title: str) -> go.Figure:
    """Bookmap-style: resting size as colour (log10), best bid/ask lines, trades as bubbles."""
    if grid.size.size == 0:
        return empty_figure(title, "no snapshots in this window")
    fig = go.Figure()
    with np.errstate(divide="ignore", invalid="ignore"):
        z = np.log10(grid.size)
    fig.add_trace(go.Heatmap(
        x=_times(grid.times_ns), y=grid.prices, z=z, colorscale="Inferno", zsmooth=False,
        colorbar={"title": "log10 size"}, name="resting size",
        customdata=grid.size, hovertemplate="%{x}<br>price %{y}<br>size %{customdata:.4g}"
                                            "<extra></extra>",
    ))
    if not top.is_empty():
        t = _times(top["ts_ns"])
        fig.add_trace(go.Scatter(x=t, y=top["best_bid"].to_numpy(), mode="lines",
                                   name="best bid", line={"color": BID_COLOUR, "width": 1.5,
                                                          "shape": "hv"}))
        fig.add_trace(go.Scatter(x=t, y=top["best_ask"].to_numpy(), mode="lines",
                                   name="best ask", line={"color": ASK_COLOUR, "width": 1.5,
                                                          "shape": "hv"}))
    if not trades.is_empty():
        biggest = float(trades["size"].max()) or 1.0
        for side, name, colour in ((1, "buy (aggressor)", BUY_COLOUR),
                                   (-1, "sell (aggressor)", SELL_COLOUR)):
            part = trades.filter(pl.col("side") == side)
            if part.is_empty():
                continue
            size = part["size"].to_numpy()
            fig.add_trace(go.Scatter(
                x=_times(part["ts_ns"]), y=part["price"].to_numpy(), mode="markers", name=name,
                marker={"size": 3 + 17 * np.sqrt(size / biggest), "color": colour,
                        "opacity": 0.6, "line": {"width": 0}},
                customdata=size, hovertemplate="%{x}<br>%{y}<br>size %{customdata:.4g}"
                                               "<extra></extra>",
            ))
    fig.update_xaxes(showgrid=False)
    fig.update_yaxes(showgrid=False)
    return _layout(fig, title, height=620, xaxis_title="time (UTC)", yaxis_title="price",
                   plot_bgcolor="black")


# ------------------------------------------------------------------ Features page


def imbalance_response_figure(bins: pl.DataFrame, imbalance: str) -> go.Figure:
    """Mean forward return per imbalance bin, one line per horizon, ±1.96 s.e. bars."""
    title = f"Forward mid return against {imbalance}"
    if bins.is_empty():
        return empty_figure(title, "no rows with both the imbalance and a forward return")
    fig = go.Figure()
    for (horizon,), part in bins.group_by("horizon", maintain_order=True):
        fig.add_trace(go.Scatter(
            x=part["imbalance"].to_numpy(), y=part["mean_bps"].to_numpy(),
            error_y={"type": "data", "array": 1.96 * part["se_bps"].fill_null(0).to_numpy(),
                     "visible": True},
            mode="lines+markers", name=f"h = {horizon}",
            customdata=part["n"].to_numpy(),
            hovertemplate="imbalance %{x:.2f}<br>%{y:.3f} bps<br>n = %{customdata}<extra></extra>",
        ))
    fig.add_hline(y=0, line={"color": "grey", "dash": "dot"})
    return _layout(fig, title + " (bins, 95% error bars)", xaxis_title=imbalance,
                   yaxis_title="mean forward mid return (bps)")


def opportunity_figure(report: pl.DataFrame, fee_bps: float) -> go.Figure:
    """Share of rows that pay (long, short) per horizon at one fee, on a 0-100 % axis,
    and mean |move| over the round-trip cost on the right."""
    title = f"Rows where a round trip pays at {fee_bps:g} bps per side"
    if report.is_empty():
        return empty_figure(title, "no rows at this fee level")
    fig = make_subplots(specs=[[{"secondary_y": True}]])
    for (venue, symbol), part in report.group_by("venue", "symbol", maintain_order=True):
        label = f"{venue} {symbol}"
        for col, name in (("share_long", "long pays"), ("share_short", "short pays")):
            if col in part.columns:
                fig.add_trace(go.Bar(x=part["horizon"].to_list(), y=part[col].to_numpy(),
                                     name=f"{label}: {name}"), secondary_y=False)
        if "move_over_cost" in part.columns:
            fig.add_trace(go.Scatter(x=part["horizon"].to_list(),
                                     y=part["move_over_cost"].to_numpy(), mode="lines+markers",
                                     name=f"{label}: mean |move| / round-trip cost"),
                          secondary_y=True)
    fig.update_yaxes(title_text="share of rows that pay", tickformat=".0%", range=[0, 1],
                     secondary_y=False)
    fig.update_yaxes(title_text="mean |move| / cost", rangemode="tozero", showgrid=False,
                     secondary_y=True)
    return _layout(fig, title, barmode="group", xaxis_title="horizon")


def useful_fee(report: pl.DataFrame, at_least: float = 0.05) -> float:
    """The fee to show first: the highest level at which some horizon still pays on a
    visible share of rows (`at_least`, 5 %), where the answer turns; else the lowest."""
    fees = sorted(report["fee_bps"].unique().to_list())
    share = pl.max_horizontal("share_long", "share_short")
    paying = report.filter(share >= at_least)["fee_bps"].unique().to_list()
    return max(paying) if paying else fees[0]


def verdict_heatmap(rows: pl.DataFrame, title: str) -> go.Figure:
    """Fee per side (x) by horizon (y), coloured by net bps per trade (red loses, blue
    pays), each cell labelled with its verdict word and trade count."""
    if rows.is_empty():
        return empty_figure(title, "no verdict rows for this choice")
    fees = sorted(rows["fee_bps"].unique().to_list())
    horizons = (rows.select("horizon", "horizon_ns").unique()
                .sort("horizon_ns", nulls_last=True)["horizon"].to_list())
    z = np.full((len(horizons), len(fees)), np.nan)
    text = [["" for _ in fees] for _ in horizons]
    for r in rows.iter_rows(named=True):
        i, j = horizons.index(r["horizon"]), fees.index(r["fee_bps"])
        net = r["net_bps_per_trade"]
        z[i, j] = np.nan if net is None else net
        text[i][j] = f"{r['verdict']}<br>{r['n_trades'] or 0} trades"
    bound = float(np.nanmax(np.abs(z))) if np.isfinite(z).any() else 1.0
    fig = go.Figure(go.Heatmap(
        x=[f"{f:g}" for f in fees], y=horizons, z=z, text=text, texttemplate="%{text}",
        colorscale="RdBu", zmid=0.0, zmin=-bound, zmax=bound,
        colorbar={"title": {"text": "net bps / trade"}},
        hovertemplate="fee %{x} bps, horizon %{y}: %{z:.2f} bps per trade<extra></extra>"))
    fig.update_xaxes(type="category")  # fee levels as equal cells, not a numeric scale
    fig.update_yaxes(type="category")
    return _layout(fig, title, height=140 + 60 * len(horizons),
                   xaxis_title="fee per side (bps)", yaxis_title="horizon")


# ------------------------------------------------------------------ Models page


def macro_f1_figure(table: pl.DataFrame) -> go.Figure:
    """Test macro-F1 of each run's model beside its baselines."""
    if table.is_empty():
        return empty_figure("Macro-F1", "no runs")
    fig = go.Figure()
    for (estimator,), part in table.group_by("estimator", maintain_order=True):
        fig.add_trace(go.Bar(x=part["run_id"].to_list(), y=part["macro_f1"].to_numpy(),
                             name=str(estimator)))
    return _layout(fig, "Test macro-F1: model and baselines per run", barmode="group",
                   yaxis_title="macro-F1")


def confusion_figure(matrix: list[list[int]] | None, title: str) -> go.Figure:
    """Rows: true label; columns: signal; cell text is the count, colour the row share."""
    if not matrix:
        return empty_figure(title, "the run stored no confusion matrix")
    counts = np.asarray(matrix, dtype=float)
    totals = counts.sum(axis=1, keepdims=True)
    share = np.divide(counts, totals, out=np.zeros_like(counts), where=totals > 0)
    fig = go.Figure(go.Heatmap(
        z=share, x=list(CLASS_NAMES), y=list(CLASS_NAMES), colorscale="Blues", zmin=0, zmax=1,
        text=counts.astype(int).astype(str), texttemplate="%{text}",
        colorbar={"title": "row share"},
        hovertemplate="label %{y}, signal %{x}: %{text} (%{z:.1%})<extra></extra>",
    ))
    fig.update_yaxes(autorange="reversed", title_text="label")
    fig.update_xaxes(title_text="signal")
    return _layout(fig, title, height=380)


def precision_recall(truth: np.ndarray, score: np.ndarray) -> tuple[np.ndarray, np.ndarray, float]:
    """Precision and recall at every threshold (descending score), and average precision."""
    truth = np.asarray(truth, dtype=bool)
    score = np.asarray(score, dtype=float)
    positives = int(truth.sum())
    if positives == 0 or truth.size == 0:
        return np.empty(0), np.empty(0), float("nan")
    order = np.argsort(-score, kind="stable")
    s, t = score[order], truth[order]
    # One point per distinct threshold: the last row of each run of equal scores.
    last = np.r_[np.flatnonzero(np.diff(s) != 0), s.size - 1]
    tp = np.cumsum(t)[last]
    k = last + 1
    precision = tp / k
    recall = tp / positives
    ap = float(np.sum(np.diff(np.r_[0.0, recall]) * precision))
    return precision, recall, ap


def calibration(truth: np.ndarray, prob: np.ndarray, n_bins: int = 10
                ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Mean predicted probability, observed frequency and count per quantile bin."""
    truth = np.asarray(truth, dtype=float)
    prob = np.asarray(prob, dtype=float)
    if prob.size == 0:
        return np.empty(0), np.empty(0), np.empty(0, np.int64)
    edges = np.unique(np.quantile(prob, np.linspace(0, 1, n_bins + 1)))
    if edges.size < 2:
        return np.array([prob.mean()]), np.array([truth.mean()]), np.array([prob.size])
    idx = np.clip(np.searchsorted(edges, prob, side="right") - 1, 0, edges.size - 2)
    count = np.bincount(idx, minlength=edges.size - 1)
    keep = count > 0
    mean_p = np.bincount(idx, prob, minlength=edges.size - 1)[keep] / count[keep]
    freq = np.bincount(idx, truth, minlength=edges.size - 1)[keep] / count[keep]
    return mean_p, freq, count[keep]


PROBABILITY_OF = {"up": ("p_up", 1), "down": ("p_down", -1)}


def _labelled(pred: pl.DataFrame) -> pl.DataFrame:
    need = {"p_up", "p_down", "y"}
    if not need <= set(pred.columns):
        return pred.clear()
    return pred.filter(pl.col("y").is_not_null())


def pr_figure(predictions: dict[str, pl.DataFrame], cls: str) -> go.Figure:
    """Precision-recall of `cls` (up/down) for the model and each baseline's probabilities."""
    column, label = PROBABILITY_OF[cls]
    title = f"Precision-recall, {cls} (test)"
    fig = go.Figure()
    base_rate = None
    for name, pred in predictions.items():
        pred = _labelled(pred)
        if pred.is_empty():
            continue
        truth = pred["y"].to_numpy() == label
        base_rate = truth.mean()
        precision, recall, ap = precision_recall(truth, pred[column].to_numpy())
        if precision.size:
            fig.add_trace(go.Scatter(x=recall, y=precision, mode="lines",
                                     name=f"{name} (AP {ap:.3f})", line={"shape": "hv"}))
    if not fig.data:
        return empty_figure(title, f"no labelled {cls} rows in the predictions")
    if base_rate is not None:
        fig.add_hline(y=base_rate, line={"color": "grey", "dash": "dot"},
                      annotation_text=f"base rate {base_rate:.3f}")
    fig.update_xaxes(range=[0, 1])
    fig.update_yaxes(range=[0, 1.02])
    return _layout(fig, title, height=380, xaxis_title="recall", yaxis_title="precision")


def calibration_figure(predictions: dict[str, pl.DataFrame], n_bins: int = 10) -> go.Figure:
    """Reliability curves of p_up and p_down for each estimator; the diagonal is perfect."""
    title = "Calibration (test, quantile bins)"
    fig = go.Figure()
    for name, pred in predictions.items():
        pred = _labelled(pred)
        if pred.is_empty():
            continue
        for cls, (column, label) in PROBABILITY_OF.items():
            mean_p, freq, count = calibration(pred["y"].to_numpy() == label,
                                              pred[column].to_numpy(), n_bins)
            fig.add_trace(go.Scatter(x=mean_p, y=freq, mode="lines+markers",
                                     name=f"{name}: {cls}", customdata=count,
                                     hovertemplate="p %{x:.3f}, observed %{y:.3f}, "
                                                   "n %{customdata}<extra></extra>"))
    if not fig.data:
        return empty_figure(title, "no labelled rows in the predictions")
    fig.add_trace(go.Scatter(x=[0, 1], y=[0, 1], mode="lines", name="perfect",
                             line={"color": "grey", "dash": "dot"}))
    return _layout(fig, title, height=380, xaxis_title="predicted probability",
                   yaxis_title="observed frequency")


# ------------------------------------------------------------------ Backtest page


def drawdown(equity: np.ndarray) -> np.ndarray:
    """Fall from the running peak as a (negative) fraction of that peak."""
    equity = np.asarray(equity, dtype=float)
    if equity.size == 0:
        return equity
    peak = np.maximum.accumulate(np.where(np.isfinite(equity), equity, -np.inf))
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(peak > 0, equity / peak - 1.0, 0.0)


MAX_LINE_POINTS = 2_000


def _thin(n: int, most: int, must_keep: int | None = None) -> np.ndarray:
    """Row indices: every k-th row so at most about `most` remain, plus the last row and
    `must_keep` (the deepest drawdown, so thinning never hides it)."""
    step = max(1, -(-n // most))
    rows = np.arange(0, n, step)
    extra = [i for i in (n - 1, must_keep) if i is not None and n > 0]
    return np.unique(np.r_[rows, extra]).astype(np.int64)


def equity_figure(equity: pl.DataFrame | None) -> go.Figure:
    """Equity gross (at the mid, no fees) and net (paid prices, fees), drawdown below."""
    title = "Equity: gross at the mid and net of spread and fees"
    if equity is None or equity.is_empty() or not {"ts", "equity"} <= set(equity.columns):
        return empty_figure(title, "the backtest stored no equity curve")
    # Drawdown is computed on every row, then all curves are thinned for drawing: a
    # browser draws a few thousand points per line quickly, a day of seconds slowly.
    net = equity["equity"].to_numpy()
    falls = drawdown(net)
    keep = _thin(len(net), MAX_LINE_POINTS, np.argmin(falls) if len(net) else None)
    t = equity["ts"].to_numpy()[keep]
    fig = make_subplots(rows=2, cols=1, shared_xaxes=True, row_heights=[0.7, 0.3],
                        vertical_spacing=0.05)
    if "equity_gross" in equity.columns:
        fig.add_trace(go.Scatter(x=t, y=equity["equity_gross"].to_numpy()[keep], mode="lines",
                                 name="gross (mid, no fees)"), row=1, col=1)
    fig.add_trace(go.Scatter(x=t, y=net[keep], mode="lines", name="net"), row=1, col=1)
    fig.add_trace(go.Scatter(x=t, y=falls[keep], mode="lines", name="net drawdown",
                             fill="tozeroy", line={"color": SELL_COLOUR}), row=2, col=1)
    fig.update_yaxes(title_text="equity", row=1, col=1)
    fig.update_yaxes(title_text="drawdown", tickformat=".2%", row=2, col=1)
    return _layout(fig, title, height=520)


def trades_on_price_figure(top: pl.DataFrame, trades: pl.DataFrame | None) -> go.Figure:
    """Bid/ask over the backtest with each round trip's entry and exit at the paid price."""
    title = "Round trips on the price (entries ▲ long / ▼ short, exits ●; green won, red lost)"
    fig = go.Figure()
    if not top.is_empty():
        t = _times(top["ts_ns"])
        fig.add_trace(go.Scatter(x=t, y=top["best_bid"].to_numpy(), mode="lines",
                                   name="best bid", line={"color": BID_COLOUR, "shape": "hv"}))
        fig.add_trace(go.Scatter(x=t, y=top["best_ask"].to_numpy(), mode="lines",
                                   name="best ask", line={"color": ASK_COLOUR, "shape": "hv"}))
    need = {"entry_ts", "exit_ts", "entry_px", "exit_px", "side"}
    if trades is not None and not trades.is_empty() and need <= set(trades.columns):
        won = (trades["net_pnl"].to_numpy() > 0 if "net_pnl" in trades.columns
               else np.zeros(trades.height, bool))
        colour = np.where(won, BUY_COLOUR, SELL_COLOUR)
        side = trades["side"].to_numpy()
        fig.add_trace(go.Scatter(
            x=trades["entry_ts"].to_numpy(), y=trades["entry_px"].to_numpy(), mode="markers",
            name="entry", marker={"symbol": np.where(side > 0, "triangle-up", "triangle-down"),
                                  "size": 10, "color": colour}))
        fig.add_trace(go.Scatter(
            x=trades["exit_ts"].to_numpy(), y=trades["exit_px"].to_numpy(), mode="markers",
            name="exit", marker={"symbol": "circle", "size": 7, "color": colour}))
    if not fig.data:
        return empty_figure(title, "no prices or trades to draw")
    return _layout(fig, title, height=460, xaxis_title="time (UTC)", yaxis_title="price")


def cost_waterfall(stats: dict[str, Any], fees: float | None = None,
                   fee_bps: float | None = None) -> go.Figure:
    """Gross edge at the mid, minus spread paid, minus fees, equals net PnL."""
    gross, spread = stats.get("gross_pnl_mid"), stats.get("spread_cost")
    fees = stats.get("fees") if fees is None else fees
    title = "Cost decomposition of the model's round trips" + (
        f" at {fee_bps:g} bps per side" if fee_bps is not None else "")
    if not all(isinstance(v, int | float) for v in (gross, spread, fees)):
        return empty_figure(title, "the backtest stored no cost figures")
    net = gross - spread - fees
    fig = go.Figure(go.Waterfall(
        x=["gross at mid", "spread", "fees", "net"],
        measure=["absolute", "relative", "relative", "total"],
        y=[gross, -spread, -fees, net], text=[f"{v:,.4g}" for v in (gross, -spread, -fees, net)],
        textposition="outside",
        increasing={"marker": {"color": BUY_COLOUR}}, decreasing={"marker": {"color": SELL_COLOUR}},
    ))
    return _layout(fig, title, height=380, yaxis_title="PnL (quote currency)")


def fee_curve_figure(stats: dict[str, Any], chosen_fee_bps: float | None = None) -> go.Figure:
    """Net PnL of the model against the fee per side; zero is where it breaks even."""
    title = "Net PnL against fee per side"
    curve = [p for p in stats.get("fee_curve") or [] if isinstance(p, dict)]
    if not curve:
        return empty_figure(title, "the backtest stored no fee curve")
    fees = [p.get("fee_bps") for p in curve]
    fig = go.Figure(go.Scatter(x=fees, y=[p.get("net_pnl") for p in curve],
                               mode="lines+markers", name="net PnL"))
    fig.add_hline(y=0, line={"color": "grey", "dash": "dot"})
    be = stats.get("break_even_fee_bps")
    if isinstance(be, int | float) and be >= 0:
        fig.add_vline(x=be, line={"color": BUY_COLOUR, "dash": "dash"},
                      annotation_text=f"break-even {be:.2f} bps")
    if chosen_fee_bps is not None:
        fig.add_vline(x=chosen_fee_bps, line={"color": "orange"},
                      annotation_text=f"chosen {chosen_fee_bps:g} bps",
                      annotation_position="bottom right")
    return _layout(fig, title, height=380, xaxis_title="fee per side (bps)",
                   yaxis_title="net PnL")


def latency_curve_figure(stats: dict[str, Any]) -> go.Figure:
    """Net PnL of the model against signal-to-order latency (the fills move, fees do not)."""
    title = "Net PnL against latency"
    curve = [p for p in stats.get("latency_curve") or [] if isinstance(p, dict)]
    if not curve:
        return empty_figure(title, "the backtest stored no latency curve")
    x = [p.get("latency") or str(p.get("latency_ns")) for p in curve]
    fig = go.Figure(go.Scatter(x=x, y=[p.get("net_pnl") for p in curve], mode="lines+markers",
                               name="net PnL", customdata=[p.get("n_trades") for p in curve],
                               hovertemplate="%{x}: %{y:.4g} (%{customdata} trades)"
                                             "<extra></extra>"))
    fig.add_hline(y=0, line={"color": "grey", "dash": "dot"})
    fig.update_xaxes(type="category")
    return _layout(fig, title, height=380, xaxis_title="latency", yaxis_title="net PnL")


def ci_figure(by_strategy: dict[str, dict[str, Any]]) -> go.Figure:
    """Net PnL per trade with its 95% interval, model beside the baselines."""
    title = "Net PnL per trade, 95% confidence interval"
    names, mid, lo, hi = [], [], [], []
    for name, s in by_strategy.items():
        ci = s.get("net_pnl_per_trade_ci95")
        centre = s.get("net_pnl_per_trade")
        if not (isinstance(ci, list | tuple) and len(ci) == 2
                and all(isinstance(v, int | float) for v in ci)):
            continue
        c = centre if isinstance(centre, int | float) else (ci[0] + ci[1]) / 2
        names.append(name)
        mid.append(c)
        lo.append(c - ci[0])
        hi.append(ci[1] - c)
    if not names:
        return empty_figure(title, "the backtest stored no confidence intervals")
    fig = go.Figure(go.Scatter(
        x=names, y=mid, mode="markers", marker={"size": 11},
        error_y={"type": "data", "symmetric": False, "array": hi, "arrayminus": lo},
        name="net per trade"))
    fig.add_hline(y=0, line={"color": "grey", "dash": "dot"})
    return _layout(fig, title, height=380, yaxis_title="net PnL per trade")
