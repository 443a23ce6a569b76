"""Run the queue model for one symbol and write its Binance spot capture.

The model (model.py) advances in chunks of simulated time and fills integer buffers;
this module turns them into the capture records a real collector would have written:
depth diffs every 100 ms and trades on one websocket connection, one REST depth reply
that arrives after the first diffs (so the replay must buffer them, as live), and
receive times = send time + a lognormal network latency, kept in send order as TCP does.
"""

from __future__ import annotations

import datetime as dt
import math
import time
import zlib
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from bookcast.errors import UserError
from collector.capture import CaptureWriter
from collector.simulator import model
from collector.simulator.presets import SymbolPreset, model_arrays
from collector.simulator.protocol import (
    REST_CONN,
    REST_DEPTH_LIMIT,
    WS_CONN,
    BinanceSpotEncoder,
    rest_depth_url,
)

NS = 1_000_000_000
MS = 1_000_000
# a fixed start keeps files identical for a seed; the date is that of the real captures
SIM_START_NS = int(dt.datetime(2024, 8, 9, tzinfo=dt.UTC).timestamp()) * NS
WARMUP_NS = 120 * NS        # lets the book forget its initial draw
CHUNK_NS = 10 * NS          # simulated time per call into the model
SNAPSHOT_AFTER_NS = 250 * MS  # the REST request goes out while the first diffs arrive
WS_LATENCY_MEDIAN_MS = 3.0
WS_LATENCY_SIGMA = 0.5
REST_LATENCY_MEDIAN_MS = 120.0
REST_LATENCY_SIGMA = 0.3
FIRST_UPDATE_ID = 50_000_000_000
FIRST_TRADE_ID = 3_700_000_000


@dataclass
class SimulationSummary:
    symbol: str
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


def capture_path(out_dir: Path, venue: str, symbol: str, seed: int,
                 compression: str = "gz") -> Path:
    return out_dir / venue / f"{symbol.lower()}_sim_seed{seed}.jsonl.{compression}"


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
        self.preset = preset
        self.rng = rng
        self.arrival_cdf, self.par = model_arrays(preset)
        if preset.depth_ticks >= n // 4:
            raise UserError(f"The preset of {preset.symbol} places orders {preset.depth_ticks} "
                            f"ticks deep; the grid allows at most {n // 4 - 1}.")
        self.ist = np.zeros(model.IST_LEN, dtype=np.int64)
        self.size = np.zeros((2, n), dtype=np.int64)
        self.orders = np.zeros((2, n), dtype=np.int64)
        self.fw = np.zeros((2, n + 1), dtype=np.int64)
        self.dirty = np.zeros((2, n), dtype=np.uint8)
        self.dirty_list = np.zeros(2 * n, dtype=np.int64)
        self.diff_hdr = np.zeros((4096, 4), dtype=np.int64)
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


def model_price_scale(preset: SymbolPreset) -> float:
    """Ticks per unit of price."""
    return 10**8 / preset.tick_e8


def simulate_symbol(preset: SymbolPreset, hours: float, seed: int, path: Path,
                    start_ns: int = SIM_START_NS,
                    progress: Callable[[float], None] | None = None) -> SimulationSummary:
    """Simulate `hours` of one symbol and write its capture to `path`."""
    if not hours > 0:
        raise UserError(f"The duration {hours} hours must be positive.")
    started = time.perf_counter()
    model_rng, wire_rng = symbol_rngs(seed, preset.symbol)
    book = SimulatedBook(preset, model_rng, start_ns - WARMUP_NS)
    book.advance(start_ns)  # warm-up: nothing is written
    end_ns = start_ns + round(hours * 3600 * NS)
    encoder = BinanceSpotEncoder(preset.symbol, preset.tick_e8, preset.lot_e8)
    wire = _Wire(wire_rng)
    n_diffs = n_trades = 0
    with CaptureWriter(path) as writer:
        snap_ns = min(start_ns + SNAPSHOT_AFTER_NS, end_ns)
        t = start_ns
        rest_pending = True
        while t < end_ns:
            t_next = snap_ns if rest_pending else min(t + CHUNK_NS, end_ns)
            hdr, lvl, trd = book.advance(t_next)
            records = wire.records(encoder, hdr, lvl, trd)
            n_diffs += len(hdr)
            n_trades += len(trd)
            if rest_pending:
                rest_pending = False
                bids, asks = book.depth(REST_DEPTH_LIMIT)
                wire.rest_reply(snap_ns, encoder.depth_snapshot(book.last_update_id, bids, asks),
                                rest_depth_url(preset.symbol))
            wire.write(writer, records)
            t = t_next
            if progress is not None:
                progress((t - start_ns) / NS)
        wire.write(writer, [], final=True)
        records_written = writer.records
    return SimulationSummary(preset.symbol, path, (end_ns - start_ns) / NS,
                             time.perf_counter() - started, n_diffs, n_trades,
                             records_written)


class _Wire:
    """Receive times and file order: what a collector on the other end of the socket sees."""

    def __init__(self, rng: np.random.Generator) -> None:
        self.rng = rng
        self.last_ws_ns = 0
        self.rest: tuple[int, str, str] | None = None  # (ts_ns, url, text) not yet written

    def records(self, encoder: BinanceSpotEncoder, hdr: np.ndarray, lvl: np.ndarray,
                trd: np.ndarray) -> list[tuple[int, str]]:
        """(receive ns, text) of the websocket messages, in the order they were sent."""
        n_d, n_t = len(hdr), len(trd)
        send = np.concatenate([hdr[:, 0] * MS, trd[:, 0]])
        order = np.argsort(send, kind="stable")  # a diff sent at t precedes trades at t
        latency = self.rng.lognormal(math.log(WS_LATENCY_MEDIAN_MS * MS), WS_LATENCY_SIGMA,
                                     n_d + n_t).astype(np.int64)
        engine_ms = (self.rng.random(n_t) < 0.5).astype(np.int64)  # trade E is T or T + 1
        arrive = send[order] + latency
        arrive = np.maximum.accumulate(np.maximum(arrive, self.last_ws_ns))
        if len(arrive):
            self.last_ws_ns = int(arrive[-1])
        out: list[tuple[int, str]] = []
        starts = np.concatenate([[0], hdr[:, 3]])
        for k, idx in enumerate(order.tolist()):
            if idx < n_d:
                e_ms, first, last, end = hdr[idx].tolist()
                text = encoder.depth_update(e_ms, first, last, lvl[starts[idx]:end])
            else:
                r = idx - n_d
                t_ns, trade_id, px, qty, maker = trd[r].tolist()
                t_ms = t_ns // MS
                text = encoder.trade(t_ms + int(engine_ms[r]), trade_id, t_ms, px, qty,
                                     bool(maker))
            out.append((int(arrive[k]), text))
        return out

    def rest_reply(self, sent_ns: int, text: str, url: str) -> None:
        latency = int(self.rng.lognormal(math.log(REST_LATENCY_MEDIAN_MS * MS),
                                         REST_LATENCY_SIGMA))
        self.rest = (sent_ns + latency, url, text)

    def write(self, writer: CaptureWriter, records: list[tuple[int, str]],
              final: bool = False) -> None:
        for ts, text in records:
            if self.rest is not None and self.rest[0] <= ts:
                self._write_rest(writer)
            writer.write(ts, "recv", WS_CONN, text)
        if final and self.rest is not None:
            self._write_rest(writer)

    def _write_rest(self, writer: CaptureWriter) -> None:
        assert self.rest is not None
        ts, url, text = self.rest
        writer.write(max(ts, 0), "http", REST_CONN, text, url=url)
        self.rest = None
