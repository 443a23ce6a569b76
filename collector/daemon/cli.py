"""`bookcast collect`: venues and symbols from flags or a TOML file."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer

from bookcast.errors import UserError


def collect(
    config: Annotated[Path | None, typer.Option("--config", help="TOML file with many venues "
                                                                 "and symbols.")] = None,
    venue: Annotated[str | None, typer.Option(help="Venue, e.g. binance-spot.")] = None,
    symbol: Annotated[list[str] | None, typer.Option(help="Symbol as the venue spells it; "
                                                          "repeat for more.")] = None,
    endpoint: Annotated[str | None, typer.Option(help="HOST:PORT to send this venue's ws and "
                                                      "REST traffic to (plain ws/http).")] = None,
    data_dir: Annotated[Path | None, typer.Option("--data-dir", help="Data root (default "
                                                  "$BOOKCAST_DATA_DIR or ./data).")] = None,
    interval: Annotated[str | None, typer.Option(help="Snapshot grid on receive time "
                                                      "(default 1s).")] = None,
    depth: Annotated[str | None, typer.Option(help="Levels per side, or 'full' "
                                                   "(default 100).")] = None,
    flush_interval: Annotated[str | None, typer.Option(help="Write Parquet and raw capture "
                                                            "this often (default 5s).")] = None,
    metrics_port: Annotated[int | None, typer.Option(help="Prometheus /metrics and /healthz "
                                                          "port (default 9108; 0 picks one)."
                                                     )] = None,
    metrics_host: Annotated[str | None, typer.Option(help="Address for metrics (default "
                                                          "127.0.0.1).")] = None,
    stale_after: Annotated[str | None, typer.Option(help="Reconnect a stream quiet this long "
                                                         "(default 30s).")] = None,
    queue_size: Annotated[int | None, typer.Option(help="Bound of the record queue "
                                                        "(default 10000).")] = None,
    max_backoff: Annotated[str | None, typer.Option(help="Cap of the reconnect back-off "
                                                         "(default 60s).")] = None,
    run_for: Annotated[str | None, typer.Option(help="Stop cleanly after this long.")] = None,
    rest_weight_limit: Annotated[int | None, typer.Option(help="REST request weight per "
                                                          "minute (default: half the venue's "
                                                          "limit).")] = None,
    top_of_book_check: Annotated[bool, typer.Option(
        "--top-of-book-check", help="Also subscribe to the venue's top-of-book stream "
                                    "(Binance bookTicker) and count books that disagree.")] = False,
    verbose: Annotated[bool, typer.Option("--verbose", "-v", help="Log every event (INFO), "
                                                                  "not only warnings.")] = False,
) -> None:
    """Collect live order books into the raw capture and the Parquet datasets."""
    from collector.daemon.config import bind_metrics_socket, check_data_dir
    from collector.daemon.service import run_daemon, setup_json_logging

    setup_json_logging(verbose)
    cfg = build_config(config, venue, symbol, endpoint, data_dir, interval, depth,
                       flush_interval, metrics_port, metrics_host, stale_after, queue_size,
                       max_backoff, run_for, rest_weight_limit, top_of_book_check)
    check_data_dir(cfg.data_dir)
    sock = bind_metrics_socket(cfg.metrics_host, cfg.metrics_port)
    fatal = run_daemon(cfg, sock)
    if fatal:
        raise UserError(fatal)


def build_config(config: Path | None, venue: str | None, symbols: list[str] | None,
                 endpoint: str | None, data_dir: Path | None, interval: str | None,
                 depth: str | None, flush_interval: str | None, metrics_port: int | None,
                 metrics_host: str | None, stale_after: str | None, queue_size: int | None,
                 max_backoff: str | None, run_for: str | None,
                 rest_weight_limit: int | None = None,
                 top_of_book_check: bool | None = None) -> Any:
    """Flags over the TOML file over the defaults; every value checked."""
    from bookcast.paths import data_root
    from bookcast.timeutil import format_duration_ns, parse_duration_ns
    from collector.cli import parse_depth
    from collector.daemon.config import (
        DEFAULT_METRICS_PORT,
        DaemonConfig,
        StreamConfig,
        check_streams,
        parse_seconds,
        read_toml,
        streams_from_toml,
    )

    table: dict[str, Any] = {}
    if config is not None:
        table = read_toml(config)
        if venue is not None or symbols or endpoint is not None:
            raise UserError("Give venues either with --venue/--symbol/--endpoint or in "
                            "--config, not both.")
        streams = streams_from_toml(table, config)
    elif venue is None:
        raise UserError("Name a venue with --venue (and --symbol), or give a --config file.")
    else:
        streams = [StreamConfig(venue, list(symbols or []), endpoint)]
    check_streams(streams)

    def pick(flag: Any, key: str, default: Any) -> Any:
        return flag if flag is not None else table.get(key, default)

    interval_ns = parse_duration_ns(pick(interval, "interval", "1s"), what="interval")
    if interval_ns < 10_000_000:
        raise UserError(f"The interval {format_duration_ns(interval_ns)} is below the 10ms "
                        f"minimum of the snapshot grid.")
    depth_value = pick(depth, "depth", "100")
    levels = parse_depth(str(depth_value))
    port = int(pick(metrics_port, "metrics_port", DEFAULT_METRICS_PORT))
    if not 0 <= port < 65536:
        raise UserError(f"The metrics port {port} is not a port number.")
    size = int(pick(queue_size, "queue_size", 10_000))
    if size < 1:
        raise UserError(f"The queue size {size} must be at least 1.")
    run_for_value = pick(run_for, "run_for", None)
    weight_limit = pick(rest_weight_limit, "rest_weight_limit", None)
    if weight_limit is not None and int(weight_limit) < 1:
        raise UserError(f"The REST weight limit {weight_limit} must be at least 1.")
    root_value = pick(data_dir, "data_dir", None)
    return DaemonConfig(
        streams=streams,
        data_dir=data_root(root_value),
        interval_ns=interval_ns,
        depth=levels,
        flush_interval_s=parse_seconds(pick(flush_interval, "flush_interval", "5s"),
                                       "flush interval"),
        metrics_host=str(pick(metrics_host, "metrics_host", "127.0.0.1")),
        metrics_port=port,
        stale_after_s=parse_seconds(pick(stale_after, "stale_after", "30s"), "stale-after"),
        queue_size=size,
        backoff_max_s=parse_seconds(pick(max_backoff, "max_backoff", "60s"), "max back-off"),
        run_for_s=parse_seconds(run_for_value, "run-for") if run_for_value else None,
        rest_weight_limit=int(weight_limit) if weight_limit is not None else None,
        top_of_book_check=bool(pick(top_of_book_check or None, "top_of_book_check", False)),
    )


def register(app: typer.Typer) -> None:
    app.command("collect")(collect)
