"""Feature subcommands: `features`, `opportunities`, `sql`."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from bookcast import terminal
from bookcast.errors import UserError
from bookcast.terminal import Column
from bookcast.timeutil import parse_duration_ns

DataDir = Annotated[Path | None, typer.Option("--data-dir", help="Data root (default "
                                               "$BOOKCAST_DATA_DIR or ./data).")]
DEFAULT_HORIZONS = "1s,5s,10s,30s,60s"


def parse_horizons(text: str) -> list[int]:
    horizons = [parse_duration_ns(h.strip(), what="horizon") for h in text.split(",") if h.strip()]
    if not horizons:
        raise UserError(f"The horizons '{text}' name no duration; write them like 1s,10s,60s.")
    return horizons


def parse_fee_levels(text: str) -> list[float]:
    levels = []
    for part in (p.strip() for p in text.split(",")):
        try:
            value = float(part)
        except ValueError:
            raise UserError(f"The fee level '{part}' is not a number of bps; write 0,1,2,5.") from None
        if value < 0:
            raise UserError(f"The fee level {value} bps is negative; fees are zero or more.")
        levels.append(value)
    return levels


def features(
    data_dir: DataDir = None,
    feature_set: Annotated[str, typer.Option("--set", help="Feature set: default, compact.")] = "default",
    horizons: Annotated[str, typer.Option(help="Label horizons, comma-separated.")] = DEFAULT_HORIZONS,
    fee_preset: Annotated[str | None, typer.Option(help="Fee preset (default: the venue's).")] = None,
    fee_bps: Annotated[float | None, typer.Option(help="Taker fee per side in bps, "
                                                       "overriding any preset.")] = None,
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="No progress bar.")] = False,
) -> None:
    """Build features and fee-aware labels from snapshots and trades."""
    from bookcast.paths import data_root, features_dir
    from features.build import build_features

    if fee_preset is not None and fee_bps is not None:
        raise UserError("Give either --fee-preset or --fee-bps, not both.")
    written = build_features(data_root(data_dir), feature_set, parse_horizons(horizons),
                             fee_bps=fee_bps, fee_preset=fee_preset, progress=not quiet)
    typer.echo(f"wrote {len(written)} partition(s) to {features_dir(data_root(data_dir), feature_set)}")


def opportunities(
    data_dir: DataDir = None,
    horizons: Annotated[str, typer.Option(help="Horizons, comma-separated.")] = DEFAULT_HORIZONS,
    fee_bps: Annotated[str, typer.Option(help="Fee levels per side in bps, comma-separated.")]
    = "0,1,2,5,10,20",
    as_json: Annotated[bool, typer.Option("--json", help="Print {\"rows\": [...], \"report\": "
                                                         "PATH} instead of the table.")] = False,
) -> None:
    """Share of rows where a long or short would have paid spread and fees, per horizon and fee."""
    from bookcast.paths import data_root
    from features.opportunities import opportunity_table, write_report

    root = data_root(data_dir)
    report = opportunity_table(root, parse_horizons(horizons), parse_fee_levels(fee_bps))
    saved = write_report(report, root)
    if as_json:
        terminal.print_json({"rows": report.to_dicts(), "report": saved})
        return

    def pct(x: float | None) -> str | None:
        return None if x is None else f"{100 * x:.2f}"

    def num(x: float | None) -> str | None:
        return None if x is None else f"{x:.2f}"

    terminal.print_table(
        [Column("venue", align="left"), Column("symbol", align="left"), Column("horizon"),
         Column("fee per side", "bps"), Column("rows"), Column("long pays", "%"),
         Column("short pays", "%"), Column("mean |move|", "bps"),
         Column("round-trip cost", "bps"), Column("move / cost")],
        [(r["venue"], r["symbol"], r["horizon"], f"{r['fee_bps']:g}", f"{r['rows']:,}",
          pct(r["share_long"]), pct(r["share_short"]), num(r["mean_abs_move_bps"]),
          num(r["round_trip_cost_bps"]), num(r["move_over_cost"]))
         for r in report.iter_rows(named=True)],
        title="opportunities after spread and fees: the share of rows where a round trip "
              "over the horizon would have paid", keys=3)
    terminal.console().print(f"saved {saved}", highlight=False)


def sql(
    query: Annotated[str, typer.Argument(help="SQL over the views snapshots, trades, features.")],
    data_dir: DataDir = None,
    feature_set: Annotated[str, typer.Option("--set", help="Feature set behind `features`.")] = "default",
    limit: Annotated[int, typer.Option(help="Rows to print at most.")] = 50,
) -> None:
    """Query the Parquet datasets with duckdb."""
    from features.sql import run_sql

    columns, rows = run_sql(query, data_dir, feature_set)
    shown = f"first {limit} shown (--limit)" if len(rows) > limit else "all shown"
    terminal.print_table([Column(c, align="left") for c in columns], rows[:limit],
                         caption=f"{len(rows):,} row(s), {shown}", keys=0)


def register(app: typer.Typer) -> None:
    app.command(name="features")(features)
    app.command(name="opportunities")(opportunities)
    app.command(name="sql")(sql)
