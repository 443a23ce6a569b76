"""Parquet schemas and file metadata: the binding contract of DESIGN.md.

Writers (collector) and readers (features, backtest, dashboard) import these;
nobody retypes a column list.
"""

from __future__ import annotations

import pyarrow as pa

SCHEMA_VERSION = "1"
TS = pa.timestamp("ns", tz="UTC")

SNAPSHOT_SCHEMA = pa.schema(
    [
        ("ts", TS),
        ("ts_event", TS),
        ("ts_recv", TS),
        ("seq", pa.int64()),
        ("bid_px", pa.list_(pa.float64())),
        ("bid_sz", pa.list_(pa.float64())),
        ("ask_px", pa.list_(pa.float64())),
        ("ask_sz", pa.list_(pa.float64())),
        ("n_updates", pa.int32()),
        ("gap", pa.bool_()),
    ]
)

# The snapshot columns that hold one value per book level (best first).
LEVEL_COLUMNS = tuple(f.name for f in SNAPSHOT_SCHEMA if pa.types.is_list(f.type))

TRADE_SCHEMA = pa.schema(
    [
        ("ts_recv", TS),
        ("ts_event", TS),
        ("trade_id", pa.string()),
        ("price", pa.float64()),
        ("size", pa.float64()),
        ("side", pa.int8()),
    ]
)

PREDICTION_COLUMNS = ("ts", "venue", "symbol", "p_down", "p_flat", "p_up", "y")
EQUITY_COLUMNS = ("ts", "equity", "equity_gross")
ROUND_TRIP_COLUMNS = (
    "venue", "symbol", "side", "size", "entry_ts", "exit_ts", "entry_px", "exit_px",
    "entry_mid", "exit_mid", "fees", "net_pnl",
)
STATS_KEYS = (
    "n_trades", "gross_pnl_mid", "spread_cost", "fees", "net_pnl", "hit_rate", "sharpe",
    "max_drawdown", "break_even_fee_bps", "net_pnl_per_trade_ci95",
)


def file_metadata(venue: str, symbol: str, **extra: object) -> dict[bytes, bytes]:
    """Key-value metadata every bookcast Parquet file carries."""
    meta = {"bookcast.schema": SCHEMA_VERSION, "venue": venue, "symbol": symbol}
    meta.update({k: str(v) for k, v in extra.items()})
    return {k.encode(): str(v).encode() for k, v in meta.items()}
