"""`bookcast replay`: capture files -> snapshots and trades Parquet, through the live pipeline."""

from __future__ import annotations

import logging
import time
from collections import defaultdict
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from itertools import islice
from pathlib import Path
from typing import Any

from bookcast.errors import UserError
from bookcast.timeutil import format_duration_ns
from collector.capture import ReadStats, capture_source, iter_capture, merge_captures
from collector.pipeline import DEFAULT_ROTATE_ROWS, Pipeline, TopCheck
from collector.venues import VENUES, detect_venue, venue_class

log = logging.getLogger("bookcast.collector")
MIN_INTERVAL_NS = 10_000_000

WRITE_CUTS_EVERY = (1 << 12) - 1  # records between writes of the parts rotation cut


@dataclass
class StreamSummary:
    venue: str
    symbol: str
    messages: int
    updates: int
    snapshots: int
    trades: int
    gaps: int
    checksum_failures: int
    resyncs: int


@dataclass
class ReplaySummary:
    streams: list[StreamSummary] = field(default_factory=list)
    records: int = 0
    malformed: int = 0
    parse_errors: int = 0
    seconds: float = 0.0
    files_written: list[Path] = field(default_factory=list)
    top_checks: dict[str, TopCheck] = field(default_factory=dict)
    pipelines: dict[str, Pipeline] = field(default_factory=dict)


def sniff(path: Path, records: int = 200) -> tuple[list[str], list[str]]:
    """The connection names and addresses of a capture's first records."""
    conns, urls = [], []
    for rec in islice(iter_capture(path, warn=False), records):
        conns.append(rec.conn)
        if rec.url:
            urls.append(rec.url)
    return conns, urls


def sniff_venue(path: Path, records: int = 200) -> str | None:
    """The venue a capture file was recorded from, judged by its first records."""
    return detect_venue(*sniff(path, records))


def refuse_other_family(path: Path, venue: str) -> None:
    """A capture recorded from a host of another product family than `venue` speaks (a
    COIN-M capture under binance-usdm) ends in one sentence naming what was found."""
    from urllib.parse import urlparse

    families = venue_class(venue).other_families
    for url in sniff(path)[1]:
        host = urlparse(url).hostname if "://" in url else None
        if host in families:
            raise UserError(f"'{path}' was recorded from {host}: {families[host]}; "
                            f"{venue} does not speak it.")


def group_by_venue(paths: list[Path], venue: str | None) -> dict[str, list[Path]]:
    groups: dict[str, list[Path]] = defaultdict(list)
    if venue is not None:
        venue_class(venue)  # an unknown venue is a user error, said before any work
    for path in paths:
        if venue is not None:
            refuse_other_family(path, venue)
        name = venue or sniff_venue(path)
        if name is None:
            known = ", ".join(sorted(VENUES))
            raise UserError(f"Cannot tell which venue recorded '{path}'; pass --venue "
                            f"(one of {known}).")
        groups[name].append(path)
    return groups


def replay_captures(paths: list[Path | str], data_dir: Path | str,
                    interval_ns: int = 1_000_000_000, depth: int | None = 100,
                    venue: str | None = None, symbols: list[str] | None = None,
                    rotate_rows: int = DEFAULT_ROTATE_ROWS, rotate_ns: int | None = None,
                    progress: bool = False) -> ReplaySummary:
    """Replay capture files into `data_dir`; files of one venue are merged by receive time."""
    if not paths:
        raise UserError("No capture files were given to replay.")
    check_sampling(interval_ns, depth)
    files = [Path(p) for p in paths]
    groups = group_by_venue(files, venue)
    summary = ReplaySummary()
    started = time.perf_counter()
    stats = ReadStats()
    total_bytes = sum(p.stat().st_size for p in files)
    with progress_bar("replay", progress, total_bytes) as advance:
        for venue_name, venue_files in groups.items():
            pipeline = replay_pipeline(venue_name, venue_files, data_dir, interval_ns,
                                       stats=stats, on_bytes=advance, depth=depth,
                                       source=capture_source(venue_files),
                                       symbols=symbols, rotate_rows=rotate_rows,
                                       rotate_ns=rotate_ns)
            summary.pipelines[venue_name] = pipeline
            summary.top_checks[venue_name] = pipeline.top_check
            summary.parse_errors += pipeline.parse_errors
            for writer in (*pipeline.snapshot_writers.values(), *pipeline.trade_writers.values()):
                summary.files_written.extend(writer.files)
            for state in pipeline.states():
                writer = pipeline.snapshot_writers.get(state.symbol)
                summary.streams.append(StreamSummary(
                    venue_name, state.symbol, state.messages, state.level_updates,
                    writer.rows_written if writer else 0, state.trades, state.gaps,
                    state.checksum_failures, state.resyncs))
            _require_a_book(pipeline, venue_files)
    summary.records = stats.records
    summary.malformed = stats.malformed
    summary.seconds = time.perf_counter() - started
    return summary


def check_sampling(interval_ns: int, depth: int | None) -> None:
    """The grid and depth every dataset writer accepts (replay, imports)."""
    if interval_ns < MIN_INTERVAL_NS:
        raise UserError(f"The interval {format_duration_ns(interval_ns)} is below the 10ms "
                        f"minimum of the snapshot grid.")
    if depth is not None and depth < 1:
        raise UserError(f"The depth {depth} must be at least 1 (or 'full').")


def replay_pipeline(venue: str, paths: list[Path], data_dir: Path | str,
                    interval_ns: int = 1_000_000_000, stats: ReadStats | None = None,
                    on_bytes: Callable[[int], None] | None = None,
                    **pipeline_options: Any) -> Pipeline:
    """Replay captures of one venue through a fresh Pipeline and return it, finished, so
    its books, counters and top-of-book checks can be inspected (tests, notebooks)."""
    pipeline = Pipeline(venue, data_dir, interval_ns=interval_ns, **pipeline_options)
    feed = pipeline.feed
    for i, rec in enumerate(merge_captures(paths, stats, on_bytes=on_bytes)):
        feed(rec)
        if not i & WRITE_CUTS_EVERY:
            pipeline.write_pending()  # a finished part waits in memory no longer than this
    pipeline.finish()
    return pipeline


def _require_a_book(pipeline: Pipeline, files: list[Path]) -> None:
    """A capture that never gave any book a snapshot cannot be replayed into snapshots."""
    states = pipeline.states()
    if any(s.resyncs for s in states):
        return
    names = ", ".join(f"'{p}'" for p in files)
    if not states and pipeline.symbols:
        asked = ", ".join(sorted(pipeline.symbols))
        held = book_symbols(files, pipeline.venue_name)
        holds = (f"its symbols are {', '.join(held)}" if held
                 else "it holds no order-book messages at all")
        raise UserError(f"The capture {names} holds no {pipeline.venue_name} book for "
                        f"--symbol {asked}; {holds}.")
    if not states:
        raise UserError(f"The capture {names} holds no order-book messages for "
                        f"{pipeline.venue_name}.")
    unmatched = pipeline.venue.unmatched_snapshots
    if unmatched:
        raise UserError(f"The capture {names} holds {unmatched} depth snapshot"
                        f"{'s' if unmatched > 1 else ''} that match{'es' if unmatched == 1 else ''}"
                        f" none of its symbols (by request, subscription or update ids), so "
                        f"no {pipeline.venue_name} book could be built.")
    if any(s.gaps for s in states):
        raise UserError(f"The capture {names} holds depth snapshots, but none could be joined "
                        f"to the diffs (each is older than the first diff it would continue), "
                        f"so no {pipeline.venue_name} book could be built.")
    raise UserError(f"The capture {names} holds no depth snapshot, so no "
                    f"{pipeline.venue_name} book could be built; record the REST or "
                    f"websocket snapshot together with the updates.")


def book_symbols(paths: list[Path], venue: str, records: int = 20_000) -> list[str]:
    """The symbols whose order-book messages appear in the first records of the captures
    (the books are kept, nothing is sampled or written)."""
    probe = Pipeline(venue, "/nonexistent-never-written")
    for rec in islice(merge_captures(paths), records):
        probe.venue.on_record(rec)
    return sorted(s.symbol for s in probe.states())


@contextmanager
def progress_bar(label: str, enabled: bool, total_bytes: int
                 ) -> Iterator[Callable[[int], None] | None]:
    """A rich progress bar over the compressed bytes of the input files, or nothing."""
    if not enabled:
        yield None
        return
    from rich.progress import (
        BarColumn,
        DownloadColumn,
        Progress,
        TextColumn,
        TimeElapsedColumn,
        TimeRemainingColumn,
    )

    with Progress(TextColumn(label), BarColumn(), DownloadColumn(), TimeElapsedColumn(),
                  TimeRemainingColumn()) as bar:
        task = bar.add_task(label, total=total_bytes)
        yield lambda n: bar.advance(task, n)
        bar.update(task, completed=total_bytes)
