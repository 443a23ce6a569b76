"""Run the queue model for a venue's symbols and write their capture.

The model (model.py) advances in chunks of simulated time and fills integer buffers; a
protocol (protocols/) spells them as the venue's messages; this module adds what the
network adds and writes the records a real collector would have written: receive time =
send time + a lognormal latency, kept in send order per connection as TCP does, and REST
replies that arrive after the websocket messages sent meanwhile (so a replay must buffer
diffs, as live). A regime schedule (presets.regime_schedule) changes the model's
parameters at set times; the book itself carries over.
"""

from __future__ import annotations

import datetime as dt
import math
import time
import zlib
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from bookcast.errors import UserError
from collector.capture import CaptureWriter
from collector.simulator import model
from collector.simulator.presets import (
    DEFAULT_SWITCH_EVERY_S,
    Regime,
    SymbolPreset,
    model_arrays,
    regime_schedule,
)
from collector.simulator.protocols import PROTOCOLS, ChunkOutput, Record

if TYPE_CHECKING:
    from rich.progress import Progress

NS = 1_000_000_000
MS = 1_000_000
# a fixed start keeps files identical for a seed; the date is that of the real captures
SIM_START_NS = int(dt.datetime(2024, 8, 9, tzinfo=dt.UTC).timestamp()) * NS
WARMUP_NS = 120 * NS        # lets the book forget its initial draw
CHUNK_NS = 10 * NS          # simulated time per call into the model
WS_LATENCY_MEDIAN_MS = 3.0
WS_LATENCY_SIGMA = 0.5
REST_LATENCY_MEDIAN_MS = 120.0
REST_LATENCY_SIGMA = 0.3
FIRST_UPDATE_ID = 50_000_000_000
FIRST_TRADE_ID = 3_700_000_000


@dataclass
class SimulationSummary:
    venue: str
    symbols: list[str]
    path: Path
    simulated_s: float
    wall_s: float
    diffs: int
    trades: int
    records: int

    @property
    def speed(self) -> float:
        """Simulated seconds per wall-clock second."""
        return self.simulated_s / self.wall_s if self.wall_s > 0 else math.inf


def capture_path(out_dir: Path, venue: str, symbols: list[str], seed: int,
                 compression: str = "gz") -> Path:
    """<out>/<venue>/<symbol>[+<symbol>...]_sim_seed<S>.jsonl.<gz|zst>"""
    name = "+".join(s.lower() for s in symbols)
    return out_dir / venue / f"{name}_sim_seed{seed}.jsonl.{compression}"


def session_groups(venue: str, symbols: list[str]) -> list[list[str]]:
    """The sessions (connections, so capture files) a venue's symbols are written in."""
    if PROTOCOLS[venue].one_symbol_per_session:
        return [[s] for s in symbols]
    return [list(symbols)]


def symbol_rngs(seed: int, symbol: str) -> tuple[np.random.Generator, np.random.Generator]:
    """(model, wire) generators: one stream per symbol, stable across runs and processes."""
    seq = np.random.SeedSequence([seed, zlib.crc32(symbol.encode())])
    model_seq, wire_seq = seq.spawn(2)
    return np.random.default_rng(model_seq), np.random.default_rng(wire_seq)


class SimulatedBook:
    """One symbol's model state (the arrays model.py documents) and its output buffers."""

    def __init__(self, preset: SymbolPreset, rng: np.random.Generator, start_ns: int,
                 grid_ticks: int = model.GRID_TICKS) -> None:
        n = grid_ticks
        self.rng = rng
        self.grid_ticks = n
        self.use_preset(preset)
        self.ist = np.zeros(model.IST_LEN, dtype=np.int64)
        self.size = np.zeros((2, n), dtype=np.int64)
        self.orders = np.zeros((2, n), dtype=np.int64)
        self.fw = np.zeros((2, n + 1), dtype=np.int64)
        self.dirty = np.zeros((2, n), dtype=np.uint8)
        self.dirty_list = np.zeros(2 * n, dtype=np.int64)
        self.diff_hdr = np.zeros((4096, 8), dtype=np.int64)
        self.diff_lvl = np.zeros((4 * n, 3), dtype=np.int64)
        self.trades = np.zeros((1 << 16, 5), dtype=np.int64)
        centre = n // 2
        mid_ticks = preset.start_price * model_price_scale(preset)
        self.ist[model.ORIGIN] = round(mid_ticks + 0.5) - centre
        self.ist[model.NEXT_UPDATE] = FIRST_UPDATE_ID
        self.ist[model.DIFF_FIRST] = FIRST_UPDATE_ID
        self.ist[model.NEXT_TRADE] = FIRST_TRADE_ID
        self.ist[model.NOW_NS] = start_ns
        self.ist[model.NEXT_DIFF_NS] = start_ns + model.DIFF_INTERVAL_NS
        model.init_book(rng, self.arrival_cdf, self.par, self.ist, self.size, self.orders,
                        self.fw)

    def use_preset(self, preset: SymbolPreset) -> None:
        """Drive the book with these parameters from now on (a regime change keeps the book)."""
        limit = self.grid_ticks // 4 - 1
        if preset.deep_ticks > limit:
            raise UserError(f"The preset of {preset.symbol} places orders {preset.deep_ticks} "
                            f"ticks deep; the grid allows at most {limit}.")
        self.preset = preset
        self.arrival_cdf, self.par = model_arrays(preset)

    @property
    def now_ns(self) -> int:
        return int(self.ist[model.NOW_NS])

    def advance(self, t_end_ns: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Run to t_end_ns; returns (diff headers, diff levels, trades) produced meanwhile."""
        hdrs, lvls, trds = [], [], []
        while True:
            status = model.run_until(t_end_ns, self.rng, self.ist, self.par, self.arrival_cdf,
                                     self.size, self.orders, self.fw, self.dirty,
                                     self.dirty_list, self.diff_hdr, self.diff_lvl,
                                     self.trades)
            hdrs.append(self.diff_hdr[: self.ist[model.N_DIFFS]].copy())
            lvls.append(self.diff_lvl[: self.ist[model.N_LEVELS]].copy())
            trds.append(self.trades[: self.ist[model.N_TRADES]].copy())
            if len(hdrs) > 1:  # level rows are indexed per buffer fill: make them global
                hdrs[-1][:, 3] += sum(len(x) for x in lvls[:-1])
            self.ist[model.N_DIFFS] = 0
            self.ist[model.N_LEVELS] = 0
            self.ist[model.N_TRADES] = 0
            if status == model.REACHED_END:
                break
        return np.concatenate(hdrs), np.concatenate(lvls), np.concatenate(trds)

    def depth(self, limit: int) -> tuple[np.ndarray, np.ndarray]:
        """(bids, asks) rows (price ticks, size lots), best first, as a REST reply lists them."""
        origin = self.ist[model.ORIGIN]
        bid_j = np.flatnonzero(self.size[0])[::-1][:limit]
        ask_j = np.flatnonzero(self.size[1])[:limit]
        bids = np.column_stack([origin + bid_j, self.size[0, bid_j]])
        asks = np.column_stack([origin + ask_j, self.size[1, ask_j]])
        return bids, asks

    @property
    def last_update_id(self) -> int:
        return int(self.ist[model.NEXT_UPDATE]) - 1


def simulate_captures(venue: str, presets: list[SymbolPreset], scenario: str, hours: float,
                      seed: int, out: Path, compression: str = "gz",
                      switch_every_s: float = DEFAULT_SWITCH_EVERY_S,
                      progress: bool = False) -> list[SimulationSummary]:
    """`bookcast simulate`: every session of `presets` under one scenario, as captures in
    out/<venue>/ (one file per symbol, or one per venue that multiplexes symbols)."""
    from contextlib import nullcontext

    by_symbol = {p.symbol: regime_schedule(p, scenario, hours, switch_every_s) for p in presets}
    summaries = []
    bar = _progress_bar() if progress else nullcontext()
    with bar as shown:
        for group in session_groups(venue, list(by_symbol)):
            path = capture_path(out, venue, group, seed, compression)
            advance = None
            if shown is not None:
                task = shown.add_task(f"{venue} {', '.join(group)} ({scenario})",
                                      total=hours * 3600)
                advance = lambda s, task=task: shown.update(task, completed=s)  # noqa: E731
            summaries.append(simulate_session(venue, [by_symbol[s] for s in group], hours,
                                              seed, path, progress=advance))
    return summaries


def _progress_bar() -> Progress:
    from rich.progress import BarColumn, Progress, TextColumn, TimeRemainingColumn

    return Progress(TextColumn("{task.description}"), BarColumn(),
                    TextColumn("{task.completed:.0f}/{task.total:.0f} simulated s"),
                    TimeRemainingColumn())


def model_price_scale(preset: SymbolPreset) -> float:
    """Ticks per unit of price."""
    return 10**8 / preset.tick_e8


def simulate_session(venue: str, schedules: list[list[Regime]], hours: float, seed: int,
                     path: Path, start_ns: int = SIM_START_NS,
                     progress: Callable[[float], None] | None = None) -> SimulationSummary:
    """Simulate `hours` of one session (one symbol, or every symbol of a venue that
    multiplexes them on one connection) and write its capture to `path`.

    Each symbol follows its own regime schedule (all switch at the same times). An
    interrupt or an error leaves no file behind.
    """
    if not hours > 0:
        raise UserError(f"The duration {hours} hours must be positive.")
    started = time.perf_counter()
    end_ns = start_ns + round(hours * 3600 * NS)
    symbols = [schedule[0].preset.symbol for schedule in schedules]
    books = []
    for schedule in schedules:
        model_rng, _ = symbol_rngs(seed, schedule[0].preset.symbol)
        book = SimulatedBook(schedule[0].preset, model_rng, start_ns - WARMUP_NS)
        book.advance(start_ns)  # warm-up: nothing is written
        books.append(book)
    _, wire_rng = symbol_rngs(seed, "+".join(symbols))
    protocol = PROTOCOLS[venue]([b.preset for b in books], start_ns, wire_rng)
    wire = Network(wire_rng)
    switches = sorted({start_ns + round(r.start_s * NS) for s in schedules for r in s[1:]
                       if start_ns + round(r.start_s * NS) < end_ns})
    snap_ns = (min(start_ns + protocol.snapshot_after_ns, end_ns)
               if protocol.snapshot_after_ns is not None else None)
    n_diffs = n_trades = 0
    writer = CaptureWriter(path)
    try:
        wire.send(writer, protocol.opening(books), start_ns)
        t = start_ns
        while t < end_ns:
            stops = [t + CHUNK_NS, end_ns, *[x for x in (snap_ns, *switches)
                                             if x is not None and x > t]]
            t_next = min(stops)
            outputs = [ChunkOutput(book.preset, *book.advance(t_next)) for book in books]
            n_diffs += sum(len(o.diff_headers) for o in outputs)
            n_trades += sum(len(o.trades) for o in outputs)
            records = protocol.chunk(outputs, t, t_next)
            if t_next == snap_ns:
                records += protocol.rest_snapshots(books, t_next)
            wire.send(writer, records, t_next)
            for schedule, book in zip(schedules, books, strict=True):
                due = [r for r in schedule if start_ns + round(r.start_s * NS) == t_next]
                if due:
                    book.use_preset(due[-1].preset)
            t = t_next
            if progress is not None:
                progress((t - start_ns) / NS)
        wire.send(writer, [], None)
    except BaseException:
        writer.abort()
        raise
    writer.close()
    return SimulationSummary(venue, symbols, path, (end_ns - start_ns) / NS,
                             time.perf_counter() - started, n_diffs, n_trades, writer.records)


class Network:
    """Receive times and file order: what a collector on the other end of the socket sees.

    Websocket messages arrive after a lognormal latency, never before an earlier message
    of their connection (TCP); REST replies after their own, longer latency. Records are
    written in receive order.
    """

    def __init__(self, rng: np.random.Generator) -> None:
        self.rng = rng
        self.last_ws_ns: dict[str, int] = {}
        self.held: list[tuple[int, int, Record]] = []  # (arrival, order, record) not yet due
        self.order = 0

    def send(self, writer: CaptureWriter, records: list[Record], until_ns: int | None) -> None:
        """Deliver `records` (in send order); write everything that arrived by until_ns
        (None: everything), since later records are sent after it."""
        recv = [r for r in records if r.kind == "recv"]
        other = [r for r in records if r.kind != "recv"]
        latency = self.rng.lognormal(math.log(WS_LATENCY_MEDIAN_MS * MS), WS_LATENCY_SIGMA,
                                     len(recv)).astype(np.int64)
        for conn in {r.conn for r in recv}:
            idx = [k for k, r in enumerate(recv) if r.conn == conn]
            arrive = np.array([recv[k].send_ns for k in idx], dtype=np.int64) + latency[idx]
            arrive = np.maximum.accumulate(np.maximum(arrive, self.last_ws_ns.get(conn, 0)))
            self.last_ws_ns[conn] = int(arrive[-1])
            for k, ts in zip(idx, arrive.tolist(), strict=True):
                self._hold(ts, recv[k])
        for r in other:
            lag = (int(self.rng.lognormal(math.log(REST_LATENCY_MEDIAN_MS * MS),
                                          REST_LATENCY_SIGMA)) if r.kind == "http" else 0)
            self._hold(r.send_ns + lag, r)
        self.held.sort(key=lambda x: (x[0], x[1]))
        cut = len(self.held) if until_ns is None else next(
            (k for k, x in enumerate(self.held) if x[0] > until_ns), len(self.held))
        for ts, _, r in self.held[:cut]:
            writer.write(max(ts, 0), r.kind, r.conn, r.text, url=r.url)
        del self.held[:cut]

    def _hold(self, ts: int, record: Record) -> None:
        self.held.append((ts, self.order, record))
        self.order += 1
