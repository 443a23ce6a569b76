"""Binance spot and USDⓈ-M: one shared timeline per venue, REST depth from its book.

Playback starts with the first client. Clients open `/stream?streams=...` (or
`/ws/<stream>`) and receive the recorded messages of the streams they named.
`GET /api/v3/depth` and `/fapi/v1/depth` answer from the exchange's own book at the
current point of playback (the capture run through the venue module's sync rule), so
a resync gets a fresh snapshot that joins the diffs still to come. Replies carry the
used-weight header; unknown symbols get the venue's invalid-symbol error.

A skipped or garbled depth diff is injected only when the client's book can notice
it (a snapshot was served since the previous fault and the diff starts after it),
which makes every injected fault exactly one gap downstream.
"""

from __future__ import annotations

import asyncio
import time
from itertools import islice
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlparse

import orjson
from aiohttp import web

from collector.capture import iter_capture
from collector.emulator.faults import Client
from collector.emulator.server import EmulatorConfig, VenueServer
from collector.state import SymbolState
from collector.venues.binance_spot import (
    BACKEND_TIMEOUT,
    ILLEGAL_CHARS,
    INVALID_SYMBOL,
    MANDATORY_PARAM,
    TOO_MANY_REQUESTS,
    BinanceSpot,
    error_reply,
    message_stream,
    stream_key,
)

REST_LIMIT_MAX = 5000
REST_WAIT_S = 10.0  # how long a REST request may wait for the book's first sync
PRESCAN_RECORDS = 2000


class BinanceServer(VenueServer):
    def __init__(self, venue: str, captures: list[Path], config: EmulatorConfig) -> None:
        super().__init__(venue, captures, config)
        probe = self.book.venue
        assert isinstance(probe, BinanceSpot)
        self.protocol = probe
        self.rest_path = urlparse(probe.snapshot_url("BTCUSDT")).path
        self.ws_path = urlparse(probe.ws_url(["btcusdt"])).path
        self.first_client = asyncio.Event()
        self.armed: dict[str, bool] = {}
        self.last_served: dict[str, int] = {}
        self.known_symbols = self._prescan()
        self._weight_window = (0, 0)  # (minute, weight used in it)
        self.depth_in_flight: dict[str, int] = {}
        self.max_depth_in_flight = 0  # most depth requests for one symbol at once

    def add_routes(self, app: web.Application) -> None:
        app.router.add_get(self.ws_path, self.stream)
        app.router.add_get("/ws/{streams}", self.stream)
        app.router.add_get(self.rest_path, self.depth_snapshot)

    def start(self) -> None:
        super().start()
        self._tasks.append(asyncio.create_task(self.play()))

    def _prescan(self) -> set[str]:
        """The symbols a capture holds, judged by its first records (for 'Invalid symbol')."""
        symbols: set[str] = set()
        for path in self.captures:
            for rec in islice(iter_capture(path), PRESCAN_RECORDS):
                name = message_stream(rec.data or "") if rec.kind == "recv" else None
                if name:
                    symbols.add(stream_key(name)[0])
                if rec.kind == "http" and rec.url and "symbol=" in rec.url:
                    symbols.update(s.upper() for s in parse_qs(urlparse(rec.url).query)
                                   .get("symbol", []))
        return symbols

    async def play(self) -> None:
        await self.first_client.wait()
        async for rec in self.paced(self.timeline()):
            self.records_played += 1
            if rec.kind in ("recv", "http"):
                self.book.feed(rec)
            if rec.kind != "recv" or rec.data is None or not self.clients:
                continue
            name = message_stream(rec.data)
            if name is None:
                continue
            key = stream_key(name)
            is_depth = key[1] == "depth"
            for client in list(self.clients):
                streams = client.streams  # type: ignore[attr-defined]
                if streams is None or key in streams:
                    await client.deliver(rec.data, key[0], is_depth)
        self.done = True

    def noticeable(self, symbol: str | None, text: str) -> bool:
        """A dropped diff is noticed only after a snapshot the client joined, not before it."""
        if symbol is None or not self.armed.get(symbol):
            return False
        try:
            first_id = orjson.loads(text)["data"]["U"]
        except (orjson.JSONDecodeError, KeyError, TypeError):
            return False
        if first_id <= self.last_served.get(symbol, 0):
            return False
        self.armed[symbol] = False  # one fault per snapshot served
        return True

    async def stream(self, request: web.Request) -> web.StreamResponse:
        raw = request.query.get("streams") or request.match_info.get("streams", "")
        streams = {stream_key(s) for s in raw.split("/") if s}
        ws = web.WebSocketResponse(heartbeat=None, max_msg_size=0)
        await ws.prepare(request)
        client = Client(self, ws, self.noticeable)
        client.streams = streams or None  # type: ignore[attr-defined]
        self.clients.add(client)
        self.connections += 1
        self.first_client.set()
        try:
            async for _msg in ws:
                pass  # Binance ignores what the client says on a raw stream
        finally:
            self.clients.discard(client)
        return ws

    def summary(self) -> dict[str, Any]:
        return {**super().summary(), "max_depth_in_flight": self.max_depth_in_flight}

    async def depth_snapshot(self, request: web.Request) -> web.Response:
        symbol = request.query.get("symbol", "").upper()
        self.depth_in_flight[symbol] = self.depth_in_flight.get(symbol, 0) + 1
        self.max_depth_in_flight = max(self.max_depth_in_flight, self.depth_in_flight[symbol])
        try:
            return await self._depth_reply(request, symbol)
        finally:
            self.depth_in_flight[symbol] -= 1

    async def _depth_reply(self, request: web.Request, symbol: str) -> web.Response:
        faults = self.config.faults
        if self.counts.throttled < faults.throttle_rest:
            self.counts.throttled += 1
            return web.json_response(error_reply(TOO_MANY_REQUESTS, "Too many requests."),
                                     status=429, headers={"Retry-After": "1"})
        if not symbol:
            return web.json_response(error_reply(
                MANDATORY_PARAM, "Mandatory parameter 'symbol' was not sent, was empty/null, "
                                 "or malformed."), status=400)
        if symbol not in self.known_symbols and self.book.get(symbol) is None:
            return web.json_response(error_reply(INVALID_SYMBOL, "Invalid symbol."), status=400)
        try:
            limit = min(max(int(request.query.get("limit", "100")), 1), REST_LIMIT_MAX)
        except ValueError:
            return web.json_response(error_reply(
                ILLEGAL_CHARS, "Illegal characters found in parameter 'limit'."), status=400)
        self.first_client.set()  # a snapshot request starts the clock like a stream does
        state = await self._synced_book(symbol)
        if state is None:
            return web.json_response(error_reply(
                BACKEND_TIMEOUT, "Timeout waiting for response from backend server."),
                status=503)
        body: dict[str, Any] = self.protocol.depth_reply(state, limit)
        self.snapshots_served += 1
        self.last_served[symbol] = state.seq or 0
        self.armed[symbol] = True
        header = self.protocol.used_weight_header or "X-MBX-USED-WEIGHT-1M"
        return web.Response(body=orjson.dumps(body), content_type="application/json",
                            headers={header: str(self._use_weight(limit))})

    def _use_weight(self, limit: int) -> int:
        """The venue's depth weights by limit, summed per minute, as its header reports."""
        weight = self.protocol.depth_weight(limit)
        minute, used = self._weight_window
        now_minute = int(time.time() // 60)
        used = used + weight if minute == now_minute else weight
        self._weight_window = (now_minute, used)
        return used

    async def _synced_book(self, symbol: str) -> SymbolState | None:
        deadline = time.monotonic() + REST_WAIT_S
        while True:
            state = self.book.get(symbol)
            if state is not None and state.valid:
                return state
            if time.monotonic() > deadline:
                return None
            await asyncio.sleep(0.01)
