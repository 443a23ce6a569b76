"""Faults against the real daemon and the real emulator on 127.0.0.1, every venue alike.

`run_case(venue, fault)` serves a real capture, collects it, injects the fault, waits
(on conditions: a metric reaching a value, a file appearing) until the daemon has
noticed and recovered, stops it, and then judges every written row against the states
the ORIGINAL capture's book passes through (tests/daemon/reference.py, rebuilt without
the daemon's code). The faults:

    gap       the emulator skips every N-th book update of a connection
    corrupt   ... cuts one in half (not JSON any more)
    drop      ... closes the connection every few seconds
    stall     ... sends nothing for a while (the messages are lost, as on a venue)
    kill      the exchange (emulator process) is SIGKILLed, then restarted on its port
    disk_full the data directory's filesystem (a small tmpfs) fills up, then frees
    sigkill   the daemon is SIGKILLed, then restarted on the same data directory
"""

from __future__ import annotations

import contextlib
import errno
import json
import os
import signal
import subprocess
import time
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path

from collector.capture import iter_capture

from .conftest import Daemon, Emulator, raw_files, read_rows
from .reference import ReferenceStates, reference_states

FAULTS = ("gap", "corrupt", "drop", "stall", "kill", "disk_full", "sigkill")
INTERVAL = "50ms"
DEPTH = 20
FLUSH_S = 0.5
DEADLINE_S = 90.0  # generous: conditions are met in seconds on a quiet machine


@dataclass
class VenueSetup:
    captures: list[str]  # keys of the `slices` fixture, or paths under the captures dir
    symbols: list[str]
    speed: str
    every: int  # inject a gap or corruption every this many book updates
    verified_depth: int | None = None  # compare only these levels (None: the row's depth)


VENUES = {
    "binance-spot": VenueSetup(["btc-spot"], ["BTCUSDT"], "10", 60),
    "binance-usdm": VenueSetup(["btc-usdm"], ["BTCUSDT"], "10", 60),
    "coinbase-advanced": VenueSetup(
        ["coinbase-advanced/l2_trades_btc_eth_20260809.jsonl.gz"], ["BTC-USD", "ETH-USD"],
        "2", 150),
    "coinbase-exchange": VenueSetup(
        ["coinbase-exchange/level2_10products_20210417.jsonl.gz"],
        ["BAND-BTC", "YFI-BTC", "DASH-BTC"], "2", 150),
    "kraken": VenueSetup(["kraken/book1000_10pairs_20210417.jsonl.gz"],
                         ["XBT/CHF", "ETH/CHF", "XMR/USD"], "2", 60, verified_depth=10),
}


@dataclass
class CaseResult:
    venue: str
    fault: str
    injected: dict[str, int] = field(default_factory=dict)
    detected: dict[str, float] = field(default_factory=dict)
    rows: int = 0
    flagged: int = 0  # rows with gap = true
    wrong: int = 0  # rows at no state of the capture's book, without gap = true
    wrong_flagged: int = 0
    wrong_unverified: int = 0  # wrong only below the venue's verified depth (reported)
    outage_rows: int = 0  # rows standing for a moment the stream was down
    oldest_book_s: float = 0.0  # the largest ts - ts_recv of a row: how old its book was
    lost_s: dict[str, float] = field(default_factory=dict)  # SIGKILL: raw / Parquet tail
    timeline: list[tuple[float, str]] = field(default_factory=list)  # disk_full: events
    exit_code: int | None = None
    shutdown_s: float = 0.0  # SIGTERM to exit, wall time (a loaded machine's share)
    own_shutdown_s: float | None = None  # the same by the daemon's account ("stopped")

    def report(self) -> None:
        """Append the result as one JSON line to $BOOKCAST_CHAOS_REPORT, if set."""
        path = os.environ.get("BOOKCAST_CHAOS_REPORT")
        if path:
            with open(path, "a") as fh:
                fh.write(json.dumps(asdict(self)) + "\n")


def wait_for(what: str, condition: Callable[[], bool], timeout: float = DEADLINE_S) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.05)


def metric(daemon: Daemon, name: str) -> float:
    return daemon.metrics().get(name, 0.0)


@contextlib.contextmanager
def small_disk(path: Path, size: str = "16m") -> Iterator[Path]:
    """A real tmpfs of `size` at `path` (root only); skips with the reason where impossible."""
    import pytest

    path.mkdir(parents=True, exist_ok=True)
    done = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(path)],
                          capture_output=True, text=True)
    if done.returncode:
        pytest.skip(f"cannot mount a tmpfs to fill up ({done.stderr.strip() or 'not root'}); "
                    f"run as root (CI does)")
    try:
        yield path
    finally:
        subprocess.run(["umount", "-l", str(path)], capture_output=True)


def fill(path: Path) -> Path:
    """Fill the filesystem under `path` until it is full; returns the filler file."""
    filler = path / "filler"
    fd = os.open(filler, os.O_WRONLY | os.O_CREAT | os.O_TRUNC)
    block = b"\0" * (1 << 16)
    try:
        while True:
            os.write(fd, block)
    except OSError as exc:
        assert exc.errno == errno.ENOSPC, exc
    finally:
        os.close(fd)
    return filler


def run_case(venue: str, fault: str, processes: list, slices: dict[str, Path],
             captures_dir: Path, tmp_path: Path) -> CaseResult:
    setup = VENUES[venue]
    captures = [slices[c] if c in slices else captures_dir / c for c in setup.captures]
    result = CaseResult(venue, fault)
    emulator_args = ["--speed", setup.speed, "--loop", "4"]
    if fault == "gap":
        emulator_args += ["--gap-every", str(setup.every)]
    elif fault == "corrupt":
        emulator_args += ["--corrupt-every", str(setup.every)]
    elif fault == "drop":
        emulator_args += ["--drop-every", "2.5"]
    elif fault == "stall":
        emulator_args += ["--stall", "2.5", "--stall-after", "300"]
    emulator = Emulator(captures, *emulator_args)
    processes.append(emulator)
    address = emulator.addresses[venue]
    root = tmp_path / "disk" if fault == "disk_full" else tmp_path
    with small_disk(root) if fault == "disk_full" else contextlib.nullcontext(root):
        data_dir = root / "data"
        args = ["--venue", venue, *[a for s in setup.symbols for a in ("--symbol", s)],
                "--endpoint", address, "--interval", INTERVAL, "--depth", str(DEPTH),
                "--flush-interval", f"{FLUSH_S}s", "--max-backoff", "0.5s",
                "--stale-after", "1s", "--rest-weight-limit", "1000000",
                "--refresh-every", "3s", "--log-format", "json"]
        if fault == "disk_full":
            args += ["--write-backlog", "400KiB"]  # so that a short episode overflows it

        def start_daemon(n: int = 0) -> Daemon:
            daemon = Daemon(data_dir, *args, log=tmp_path / f"daemon{n}.log")
            processes.append(daemon)
            return daemon

        daemon = start_daemon()
        books = len(setup.symbols)
        wait_for("first rows on disk",
                 lambda: metric(daemon, "bookcast_snapshots_written_total") > 0
                 and metric(daemon, "bookcast_book_valid") == books)
        stats: dict = {}
        if fault in ("gap", "corrupt", "drop", "stall"):
            key = {"gap": "followed", "corrupt": "followed", "drop": "drops",
                   "stall": "stalls"}[fault]
            wait_for(f"two {key} injected", lambda: emulator.stats(venue)[key] >= 2)
            stats = detected_faults(daemon, emulator, venue, fault, books)
        elif fault == "kill":
            stats = kill_the_exchange(daemon, emulator, captures, emulator_args, processes,
                                      venue, books, result)
        elif fault == "disk_full":
            stats = fill_the_disk(daemon, root, books, result)
        elif fault == "sigkill":
            daemon, stats = kill_the_daemon(daemon, start_daemon, data_dir, venue, books,
                                            result)
        final = daemon.metrics()
        rc, seconds = daemon.terminate(signal.SIGTERM)
        result.exit_code, result.shutdown_s = rc, round(seconds, 3)
        result.own_shutdown_s = daemon.own_shutdown_s()
        result.injected = stats
        result.detected = {k: final.get(k, 0.0) for k in (
            "bookcast_gaps_total", "bookcast_parse_errors_total", "bookcast_resyncs_total",
            "bookcast_disconnects_total", "bookcast_stale_streams_total",
            "bookcast_connect_failures_total", "bookcast_write_errors_total",
            "bookcast_rows_dropped_total", "bookcast_checksum_failures_total",
            "bookcast_startup_recovered_files_total", "bookcast_startup_removed_files_total")}
        judge_rows(result, data_dir, venue, setup, reference_states(venue, captures, DEPTH))
        assert not list(data_dir.rglob(".*.tmp")), "temporary files left behind"
    return result


def detected_faults(daemon: Daemon, emulator: Emulator, venue: str, fault: str,
                    books: int) -> dict[str, int]:
    """Wait until the daemon has counted what the emulator injected, books valid again."""
    def counted() -> bool:
        stats = emulator.stats(venue)
        m = daemon.metrics()
        valid = m.get("bookcast_book_valid", 0) == books
        if fault in ("gap", "corrupt"):
            seen = m.get("bookcast_gaps_total", 0)
            if fault == "corrupt":
                seen = min(seen, m.get("bookcast_parse_errors_total", 0))
            return valid and seen >= stats["followed"]
        if fault == "drop":
            return valid and m.get("bookcast_disconnects_total", 0) >= stats["drops"]
        return valid and m.get("bookcast_stale_streams_total", 0) + \
            m.get("bookcast_gaps_total", 0) >= stats["stalls"]

    if venue in ("kraken", "coinbase-exchange") and fault == "gap":
        # their protocols cannot see every lost update (see docs/collector.md): wait for
        # the books to be valid, and report what was and was not detected
        wait_for("valid books", lambda: metric(daemon, "bookcast_book_valid") == books)
    else:
        wait_for(f"the {fault} faults counted", counted)
    return {k: v for k, v in emulator.stats(venue).items()
            if k in ("gaps", "corruptions", "followed", "drops", "stalls", "stalled_messages")}


def kill_the_exchange(daemon: Daemon, emulator: Emulator, captures: list[Path],
                      emulator_args: list[str], processes: list, venue: str, books: int,
                      result: CaseResult) -> dict[str, int]:
    """SIGKILL the emulator for about 5 s, restart it on the same port."""
    port = emulator.addresses[venue].rpartition(":")[2]
    kill_ns = time.time_ns()
    emulator.proc.kill()
    emulator.proc.wait()
    result.timeline.append((0.0, "exchange killed"))
    wait_for("the books invalidated", lambda: metric(daemon, "bookcast_book_valid") == 0)
    result.timeline.append(((time.time_ns() - kill_ns) / 1e9, "books invalid"))
    down = time.monotonic()
    failures = metric(daemon, "bookcast_connect_failures_total")
    wait_for("reconnection attempts", lambda: metric(daemon, "bookcast_connect_failures_total")
             >= failures + 2 and time.monotonic() - down >= 5.0)
    restarted = Emulator(captures, *emulator_args, "--port", port)
    processes.append(restarted)
    restart_ns = time.time_ns()
    result.timeline.append(((restart_ns - kill_ns) / 1e9, "exchange restarted"))
    written = metric(daemon, "bookcast_snapshots_written_total")
    wait_for("books valid again and writing",
             lambda: metric(daemon, "bookcast_book_valid") == books
             and metric(daemon, "bookcast_snapshots_written_total") > written + books)
    result.timeline.append(((time.time_ns() - kill_ns) / 1e9, "books valid, rows written"))
    result.lost_s = {"kill_ns": kill_ns, "restart_ns": restart_ns}  # type: ignore[dict-item]
    return {"kills": 1, "outage_s": round((restart_ns - kill_ns) / 1e9, 1)}  # type: ignore[dict-item]


def fill_the_disk(daemon: Daemon, root: Path, books: int, result: CaseResult) -> dict:
    """Fill the data directory's filesystem, see the daemon say so, free it, see it resume."""
    t0 = time.monotonic()

    def mark(event: str) -> None:
        result.timeline.append((round(time.monotonic() - t0, 2), event))

    filler = fill(root)
    mark("disk full")
    wait_for("a counted write error and /healthz 503",
             lambda: metric(daemon, "bookcast_write_errors_total") > 0 and daemon.healthz() == 503)
    mark(f"write error counted, /healthz 503: {daemon.health_text().strip()}")
    wait_for("snapshot rows dropped past the memory bound",
             lambda: metric(daemon, "bookcast_rows_dropped_total{dataset=snapshots}") > 0)
    mark("backlog full: new rows dropped, counted, the next flagged gap = true")
    # still receiving and keeping books while nothing can be written
    wait_for("books valid while the disk is full",
             lambda: metric(daemon, "bookcast_book_valid") == books)
    filler.unlink()
    mark("space freed")
    parts = metric(daemon, "bookcast_parts_written_total")
    wait_for("writing again, /healthz 200",
             lambda: metric(daemon, "bookcast_write_failing") == 0 and daemon.healthz() == 200
             and metric(daemon, "bookcast_parts_written_total") > parts)
    mark("writing again, /healthz 200")
    errors = [e for e in daemon.events() if e.get("event", "").startswith("cannot write")]
    assert len(errors) == 1, errors  # one error per episode
    assert "No space left" in errors[0]["error"] and str(root) in errors[0]["path"], errors
    return {"disk_full_episodes": 1}


def kill_the_daemon(daemon: Daemon, start_daemon: Callable[[int], Daemon], data_dir: Path,
                    venue: str, books: int, result: CaseResult) -> tuple[Daemon, dict]:
    """SIGKILL the daemon mid-run; what it said was on disk must be, within one flush."""
    result.lost_s = sigkill_loss(daemon, data_dir, venue, VENUES[venue].symbols, FLUSH_S)
    again = start_daemon(1)
    wait_for("rows after the restart",
             lambda: metric(again, "bookcast_book_valid") == books
             and metric(again, "bookcast_snapshots_written_total") > 0)
    return again, {"sigkills": 1}


def loss_bound(metrics: dict[str, float], flush_s: float) -> float:
    """What a SIGKILL may lose: one flush interval, plus how late the daemon's flushes
    ran and the longest a flush's part took to reach the disk (both from its own
    /metrics, read just before the kill, so the bound holds on a loaded machine without
    a margin for luck), plus the processor's linger."""
    from collector.daemon.record_queue import LINGER_S

    return flush_s + metrics.get("bookcast_flush_late_seconds_max", 0.0) \
        + metrics.get("bookcast_write_seconds_max", 0.0) + LINGER_S


def sigkill_loss(daemon: Daemon, data_dir: Path, venue: str, symbols: list[str],
                 flush_s: float) -> dict[str, float]:
    """SIGKILL the daemon now; the raw capture and the Parquet lose at most `loss_bound`."""
    read_ns = time.time_ns()
    before = daemon.metrics()
    kill_ns = time.time_ns()
    daemon.terminate(signal.SIGKILL)
    # The metrics are as of their reading: a write still running then may have run on
    # until the kill, longer than any the daemon had finished (0.558 s lost against a
    # 0.557 s bound once, under a full test suite).
    bound = loss_bound(before, flush_s) + (kill_ns - read_ns) / 1e9
    last_raw = max(rec.ts_ns for path in raw_files(data_dir, venue)
                   for rec in iter_capture(path))
    last_row = max(max(_ns(read_rows(data_dir, "snapshots", venue, s), "ts"), default=0)
                   for s in symbols)
    lost = {"raw": round((kill_ns - last_raw) / 1e9, 3),
            "parquet": round((kill_ns - last_row) / 1e9, 3), "bound": round(bound, 3)}
    assert lost["raw"] <= bound, lost
    # a row waits for the record after it (the next diff) and sits on the grid
    assert lost["parquet"] <= bound + 0.2, lost
    return lost


def judge_rows(result: CaseResult, data_dir: Path, venue: str, setup: VenueSetup,
               reference: ReferenceStates) -> None:
    kill = result.lost_s if result.fault == "kill" else None
    for symbol in setup.symbols:
        table = read_rows(data_dir, "snapshots", venue, symbol)
        assert table.num_rows > 0, f"no rows for {symbol}"
        rows = table.drop_columns(["ts", "ts_event", "ts_recv"]).to_pydict()
        rows["ts"] = _ns(table, "ts")
        ages = [t - r for t, r in zip(rows["ts"], _ns(table, "ts_recv"), strict=True)]
        result.oldest_book_s = max(result.oldest_book_s, round(max(ages) / 1e9, 3))
        n = table.num_rows
        result.rows += n
        for i in range(n):
            levels = (rows["bid_px"][i], rows["bid_sz"][i], rows["ask_px"][i], rows["ask_sz"][i])
            gap = rows["gap"][i]
            result.flagged += gap
            ok = reference.holds(symbol, levels, rows["seq"][i], setup.verified_depth)
            if not ok:
                if gap:
                    result.wrong_flagged += 1
                else:
                    result.wrong += 1
            elif setup.verified_depth is not None and not reference.holds(
                    symbol, levels, rows["seq"][i]):
                result.wrong_unverified += 1
        if kill is not None:
            result.outage_rows += outage_rows(rows, kill["kill_ns"])


def _ns(table, column: str) -> list[int]:
    import pyarrow as pa

    if not table.num_rows:
        return []
    return table.column(column).cast(pa.int64()).to_pylist()


def outage_rows(rows: dict, kill_ns: int) -> int:
    """Rows whose moment lies after the exchange died and before the book's next sync."""
    ts = rows["ts"]
    resync = next((t for t, g in zip(ts, rows["gap"], strict=True) if g and t > kill_ns),
                  None)
    end = resync if resync is not None else max(ts) + 1
    # a row within 0.3 s of the kill may be one the last messages before it vouched for
    return sum(1 for t in ts if kill_ns + 300_000_000 < t < end)
