"""bookcast: the command line and the contracts shared by every package.

The packages (`collector`, `features`, `models`, `backtest`, `dashboard`) meet
only through what lives here: Parquet schemas, the data-root layout, the fee
presets, duration parsing and the user-facing error type.
"""

__version__ = "0.1.0"
