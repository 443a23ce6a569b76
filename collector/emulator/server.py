"""The exchange emulator: captures played back on 127.0.0.1 in each venue's own protocol.

One HTTP + websocket server per venue (each on its own port, since Coinbase and
Kraken both live at `/`). Two ways of playing, as the venues themselves work:

- REST-snapshot venues (Binance spot and USDⓈ-M): one shared timeline per venue,
  started by the first client. Clients open `/stream?streams=...` and receive the
  recorded messages of the streams they named. `GET /api/v3/depth` and
  `/fapi/v1/depth` answer from the exchange's own book at the current point of
  playback (the capture run through the venue module's sync rule), so a resync gets
  a fresh snapshot that joins the diffs still to come.
- Subscribe venues (Coinbase, Kraken): the book snapshot arrives over the websocket
  after the subscribe message, so each connection that subscribes gets the
  recorded session from its start: subscription replies, snapshots, updates.

Faults are injected per connection and counted in `FaultCounts` (served as JSON at
`/_emulator/stats`) so that tests compare them with what the collector saw. On the
shared timeline a skipped or garbled depth diff is injected only when the client's
book can notice it (a snapshot was served since the previous fault and the diff
starts after it), which makes every injected fault exactly one gap downstream.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import logging
import time
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass, field, replace
from itertools import islice
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlparse

import orjson
from aiohttp import WSMsgType, web

from bookcast.errors import UserError
from collector.book import UNIT_DECIMALS, format_units
from collector.capture import CaptureRecord, iter_capture, merge_captures
from collector.replay import group_by_venue
from collector.state import SymbolState
from collector.venues import venue_class

log = logging.getLogger("bookcast.emulator")

STATS_PATH = "/_emulator/stats"
REST_LIMIT_MAX = 5000
REST_WAIT_S = 10.0  # how long a REST request may wait for the book's first sync
ID_SHIFT = 10**12  # each further loop of a capture lives this far up the id space
PRESCAN_RECORDS = 2000


@dataclass
class FaultPlan:
    """Which faults to inject; None or 0 disables one."""

    drop_every_s: float | None = None  # close every connection this often (wall seconds)
    gap_every: int | None = None  # skip every N-th depth message of a connection
    corrupt_every: int | None = None  # garble every N-th depth message of a connection
    stall_s: float | None = None  # go quiet on a connection for this long ...
    stall_after: int = 500  # ... once it has been sent this many messages
    throttle_rest: int = 0  # answer the first N REST requests 429 with Retry-After: 1


@dataclass
class FaultCounts:
    drops: int = 0
    gaps: int = 0
    corruptions: int = 0
    stalls: int = 0
    throttled: int = 0


@dataclass
class EmulatorConfig:
    host: str = "127.0.0.1"
    port: int = 0  # 0: any free port; otherwise venues get port, port+1, ...
    speed: float = 1.0  # 0: as fast as the client reads
    loops: int = 1
    faults: FaultPlan = field(default_factory=FaultPlan)


class ExchangeBook:
    """The exchange's side: the capture run through the venue module's own sync rule.

    Implements the FeedSink of collector/state.py without writing anything; only the
    books and their sequence ids matter here.
    """

    def __init__(self, venue: str) -> None:
        self.venue = venue_class(venue)(self)
        self._states: dict[str, SymbolState] = {}
        self.parse_errors = 0

    def feed(self, rec: CaptureRecord) -> None:
        self.venue.on_record(rec)

    def state(self, symbol: str) -> SymbolState:
        state = self._states.get(symbol)
        if state is None:
            state = self._states[symbol] = SymbolState(self.venue.name, symbol)
        return state

    def wants(self, symbol: str) -> bool:
        return True

    def states(self) -> list[SymbolState]:
        return list(self._states.values())

    def get(self, symbol: str) -> SymbolState | None:
        return self._states.get(symbol)

    def infer_tick_size(self, state: SymbolState) -> None:
        pass

    def trade(self, state: SymbolState, ts_recv: int, ts_event: int | None, trade_id: str,
              price: float, size: float, side: int) -> None:
        pass

    def synced(self, state: SymbolState, ts_recv: int) -> None:
        state.valid = True

    def invalidate(self, state: SymbolState, ts_recv: int, reason: str) -> None:
        state.valid = False

    def request_snapshot(self, state: SymbolState) -> None:
        state.snapshot_requests += 1  # the capture carries its own snapshot replies

    def reference_top(self, state: SymbolState, seq: int | None, bid: int, ask: int,
                      ts_recv: int) -> None:
        pass

    def parse_error(self, where: str, reason: str) -> None:
        self.parse_errors += 1


def binance_stream_key(name: str) -> tuple[str, str]:
    """'btcusdt@depth@100ms' -> ('BTCUSDT', 'depth'): the update speed does not matter here."""
    symbol, _, rest = name.partition("@")
    return symbol.upper(), rest.partition("@")[0]


def message_stream(text: str) -> str | None:
    """The stream name of a combined-stream message, read without parsing the JSON."""
    if not text.startswith('{"stream":"'):
        return None
    end = text.find('"', 11)
    return text[11:end] if end > 0 else None


def decimal_text(units: int) -> str:
    """A book quantity in Binance's fixed 8-decimal spelling (10 if it needs them)."""
    try:
        return format_units(units, 8)
    except ValueError:
        return format_units(units, UNIT_DECIMALS)


class Client:
    """One websocket connection and the faults it has been given."""

    def __init__(self, server: VenueServer, ws: web.WebSocketResponse,
                 streams: set[tuple[str, str]] | None) -> None:
        self.server, self.ws, self.streams = server, ws, streams
        self.sent = 0
        self.depth_sent = 0
        self.gap_due = False
        self.corrupt_due = False
        self.stall_until = 0.0
        self.stalled = False

    async def deliver(self, text: str, symbol: str | None, is_depth: bool) -> None:
        plan, counts = self.server.config.faults, self.server.counts
        if self.ws.closed:
            return
        if self.stall_until:
            if time.monotonic() < self.stall_until:
                return  # quiet: the venue sends nothing to this connection
            self.stall_until = 0.0
        if plan.stall_s and not self.stalled and self.sent >= plan.stall_after:
            self.stalled = True
            counts.stalls += 1
            self.stall_until = time.monotonic() + plan.stall_s
            log.info("stalling a %s connection for %.1f s", self.server.venue_name, plan.stall_s)
            return
        if is_depth and (plan.gap_every or plan.corrupt_every):
            self.depth_sent += 1
            if plan.gap_every and self.depth_sent % plan.gap_every == 0:
                self.gap_due = True
            if plan.corrupt_every and self.depth_sent % plan.corrupt_every == 0:
                self.corrupt_due = True
            if (self.gap_due or self.corrupt_due) and self.server.fault_noticeable(symbol, text):
                self.server.armed[symbol or ""] = False
                if self.gap_due:
                    self.gap_due = False
                    counts.gaps += 1
                    return
                self.corrupt_due = False
                counts.corruptions += 1
                text = text[: len(text) // 2]  # cut mid-message: no longer JSON
        self.sent += 1
        self.server.messages_sent += 1
        with contextlib.suppress(ConnectionError, RuntimeError):
            await self.ws.send_str(text)  # a client that went away is cleaned up by its handler


class VenueServer:
    """One venue's emulated endpoints and its playback."""

    def __init__(self, venue: str, captures: list[Path], config: EmulatorConfig) -> None:
        self.venue_name = venue
        self.captures = captures
        self.config = config
        self.book = ExchangeBook(venue)
        probe = self.book.venue
        self.rest_url = probe.snapshot_url("BTCUSDT")
        self.shared_timeline = self.rest_url is not None
        self.ws_path = urlparse(probe.ws_url(["BTCUSDT"])).path or "/"
        self.clients: set[Client] = set()
        self.counts = FaultCounts()
        self.connections = 0
        self.records_played = 0
        self.messages_sent = 0
        self.snapshots_served = 0
        self.done = False
        self.first_client = asyncio.Event()
        self.armed: dict[str, bool] = {}
        self.last_served: dict[str, int] = {}
        self.known_symbols = self._prescan() if self.shared_timeline else set()
        self._weight_window = (0, 0)  # (minute, weight used in it)
        self._tasks: list[asyncio.Task] = []

    # -- the application ------------------------------------------------------------------
    def app(self) -> web.Application:
        app = web.Application()
        app.router.add_get(STATS_PATH, self.stats)
        if self.shared_timeline:
            app.router.add_get(self.ws_path, self.binance_stream)
            app.router.add_get("/ws/{streams}", self.binance_stream)
            app.router.add_get(urlparse(self.rest_url or "").path, self.depth_snapshot)
        else:
            app.router.add_get("/", self.subscribe_session)
            if self.ws_path != "/":
                app.router.add_get(self.ws_path, self.subscribe_session)
        return app

    def start(self) -> None:
        if self.shared_timeline:
            self._tasks.append(asyncio.create_task(self.play_shared()))
        if self.config.faults.drop_every_s:
            self._tasks.append(asyncio.create_task(self.drop_connections()))

    async def stop(self) -> None:
        for task in self._tasks:
            task.cancel()
        for client in list(self.clients):
            with contextlib.suppress(Exception):
                await asyncio.wait_for(client.ws.close(code=1001), 1.0)

    async def stats(self, request: web.Request) -> web.Response:
        body = {"venue": self.venue_name, "records_played": self.records_played,
                "done": self.done, "clients": len(self.clients),
                "messages_sent": self.messages_sent,
                "connections": self.connections, "snapshots_served": self.snapshots_served,
                **asdict(self.counts)}
        return web.json_response(body)

    # -- records ----------------------------------------------------------------------------
    def _prescan(self) -> set[str]:
        """The symbols a capture holds, judged by its first records (for 'Invalid symbol')."""
        symbols: set[str] = set()
        for path in self.captures:
            for rec in islice(iter_capture(path), PRESCAN_RECORDS):
                name = message_stream(rec.data or "") if rec.kind == "recv" else None
                if name:
                    symbols.add(binance_stream_key(name)[0])
                if rec.kind == "http" and rec.url and "symbol=" in rec.url:
                    symbols.update(s.upper() for s in parse_qs(urlparse(rec.url).query)
                                   .get("symbol", []))
        return symbols

    def timeline(self) -> Iterator[tuple[CaptureRecord, float]]:
        """Records of every loop with their offset in capture seconds from the start.

        Loops after the first move every update id up by ID_SHIFT, so the join between
        loops is a sequence gap the client must resynchronise across, as it would be.
        """
        first_ts: int | None = None
        span_ns = 0
        for loop_no in range(max(1, self.config.loops)):
            last_ts = first_ts or 0
            for rec in merge_captures(self.captures):
                if first_ts is None:
                    first_ts = rec.ts_ns
                last_ts = max(last_ts, rec.ts_ns)
                if loop_no:
                    rec = shift_binance_record(rec, loop_no * ID_SHIFT)
                yield rec, (rec.ts_ns - first_ts + loop_no * span_ns) / 1e9
            span_ns = last_ts - (first_ts or 0) + 1_000_000_000

    async def paced(self, records: Iterator[tuple[CaptureRecord, float]]
                    ) -> Any:
        """Yield records at --speed times their recorded pace (0: as fast as possible)."""
        speed = self.config.speed
        loop = asyncio.get_running_loop()
        started = loop.time()
        for n, (rec, offset) in enumerate(records):
            if speed > 0:
                delay = started + offset / speed - loop.time()
                if delay > 0.0005:
                    await asyncio.sleep(delay)
            elif not n & 0xFF:
                await asyncio.sleep(0)
            yield rec

    # -- shared timeline (Binance) ----------------------------------------------------------
    async def play_shared(self) -> None:
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
            key = binance_stream_key(name)
            is_depth = key[1] == "depth"
            for client in list(self.clients):
                if client.streams is None or key in client.streams:
                    await client.deliver(rec.data, key[0], is_depth)
        self.done = True
        log.info("%s: playback finished after %d records", self.venue_name, self.records_played)

    def fault_noticeable(self, symbol: str | None, text: str) -> bool:
        """A dropped diff is noticed only after a snapshot the client joined, not before it."""
        if not self.shared_timeline:
            return True
        if symbol is None or not self.armed.get(symbol):
            return False
        try:
            first_id = orjson.loads(text)["data"]["U"]
        except (orjson.JSONDecodeError, KeyError, TypeError):
            return False
        return first_id > self.last_served.get(symbol, 0)

    async def binance_stream(self, request: web.Request) -> web.StreamResponse:
        raw = request.query.get("streams") or request.match_info.get("streams", "")
        streams = {binance_stream_key(s) for s in raw.split("/") if s}
        ws = web.WebSocketResponse(heartbeat=None, max_msg_size=0)
        await ws.prepare(request)
        client = Client(self, ws, streams or None)
        self.clients.add(client)
        self.connections += 1
        self.first_client.set()
        try:
            async for _msg in ws:
                pass  # Binance ignores what the client says on a raw stream
        finally:
            self.clients.discard(client)
        return ws

    async def depth_snapshot(self, request: web.Request) -> web.Response:
        faults = self.config.faults
        if self.counts.throttled < faults.throttle_rest:
            self.counts.throttled += 1
            return web.json_response({"code": -1003, "msg": "Too many requests."}, status=429,
                                     headers={"Retry-After": "1"})
        symbol = request.query.get("symbol", "").upper()
        if not symbol:
            return web.json_response({"code": -1102, "msg": "Mandatory parameter 'symbol' was "
                                      "not sent, was empty/null, or malformed."}, status=400)
        if symbol not in self.known_symbols and self.book.get(symbol) is None:
            return web.json_response({"code": -1121, "msg": "Invalid symbol."}, status=400)
        try:
            limit = min(max(int(request.query.get("limit", "100")), 1), REST_LIMIT_MAX)
        except ValueError:
            return web.json_response({"code": -1100, "msg": "Illegal characters found in "
                                      "parameter 'limit'."}, status=400)
        self.first_client.set()  # a snapshot request starts the clock like a stream does
        state = await self._synced_book(symbol)
        if state is None:
            return web.json_response({"code": -1007, "msg": "Timeout waiting for response "
                                      "from backend server."}, status=503)
        body: dict[str, Any] = {"lastUpdateId": state.seq}
        if "/fapi/" in request.path:
            event_ms = (state.ts_event or 0) // 1_000_000
            body["E"], body["T"] = event_ms, event_ms
        body["bids"] = [[decimal_text(p), decimal_text(q)] for p, q in state.book.bids(limit)]
        body["asks"] = [[decimal_text(p), decimal_text(q)] for p, q in state.book.asks(limit)]
        self.snapshots_served += 1
        self.last_served[symbol] = state.seq or 0
        self.armed[symbol] = True
        return web.Response(body=orjson.dumps(body), content_type="application/json",
                            headers={"X-MBX-USED-WEIGHT-1M": str(self._use_weight(limit))})

    def _use_weight(self, limit: int) -> int:
        """Binance's depth weights by limit, summed per minute, as the header reports them."""
        weight = 5 if limit <= 100 else 25 if limit <= 500 else 50 if limit <= 1000 else 250
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

    # -- per-connection sessions (Coinbase, Kraken) ----------------------------------------
    async def subscribe_session(self, request: web.Request) -> web.StreamResponse:
        ws = web.WebSocketResponse(heartbeat=None, max_msg_size=0)
        await ws.prepare(request)
        client = Client(self, ws, None)
        self.clients.add(client)
        self.connections += 1
        player: asyncio.Task | None = None
        try:
            async for msg in ws:
                if msg.type != WSMsgType.TEXT:
                    continue
                if player is None and '"subscribe"' in msg.data:
                    player = asyncio.create_task(self.play_session(client))
        finally:
            self.clients.discard(client)
            if player is not None:
                player.cancel()
        return ws

    async def play_session(self, client: Client) -> None:
        """The recorded session from its start: replies, snapshots and updates, in order."""
        records = ((rec, offset) for rec, offset in self.timeline() if rec.kind == "recv")
        async for rec in self.paced(records):
            self.records_played += 1
            if rec.data is not None:
                await client.deliver(rec.data, None, client.sent >= 50)
        self.done = True

    # -- faults -----------------------------------------------------------------------------
    async def drop_connections(self) -> None:
        every = self.config.faults.drop_every_s or 0.0
        while True:
            await asyncio.sleep(every)
            if self.done:
                return  # a finished playback is left quiet, so the counts stay final
            for client in list(self.clients):
                if client.ws.closed:
                    continue
                self.counts.drops += 1
                log.info("dropping a %s connection", self.venue_name)
                with contextlib.suppress(Exception):
                    await asyncio.wait_for(client.ws.close(code=1001, message=b"drop"), 1.0)


def shift_binance_record(rec: CaptureRecord, shift: int) -> CaptureRecord:
    """A later loop's copy of a record: update ids moved up by `shift`."""
    if rec.data is None or rec.kind not in ("recv", "http"):
        return rec
    try:
        obj = orjson.loads(rec.data)
    except orjson.JSONDecodeError:
        return rec
    payload = obj.get("data", obj) if isinstance(obj, dict) else None
    if not isinstance(payload, dict):
        return rec
    for key in ("U", "u", "pu", "lastUpdateId"):
        if isinstance(payload.get(key), int):
            payload[key] += shift
    return replace(rec, data=orjson.dumps(obj).decode())


async def run_emulator(paths: list[Path], config: EmulatorConfig,
                       ready: Callable[[dict[str, str]], None] | None = None,
                       stop: asyncio.Event | None = None) -> dict[str, dict[str, Any]]:
    """Serve the captures until `stop` is set; returns each venue's fault counts."""
    if config.speed < 0:
        raise UserError(f"The speed {config.speed} must be positive (or 0 for as fast as "
                        f"possible).")
    groups = group_by_venue([Path(p) for p in paths], None)
    servers = [VenueServer(venue, files, config) for venue, files in groups.items()]
    runners: list[web.AppRunner] = []
    addresses: dict[str, str] = {}
    try:
        for i, server in enumerate(servers):
            runner = web.AppRunner(server.app(), access_log=None)
            await runner.setup()
            runners.append(runner)
            port = config.port + i if config.port else 0
            site = web.TCPSite(runner, config.host, port)
            try:
                await site.start()
            except OSError as exc:
                if exc.errno == errno.EADDRINUSE:
                    raise UserError(f"The port {port} on {config.host} is already in use; "
                                    f"choose another with --port.") from None
                raise UserError(f"Cannot listen on {config.host}:{port}: {exc.strerror}.") \
                    from None
            sock = site._server.sockets[0]  # type: ignore[union-attr]
            host, bound = sock.getsockname()[:2]
            addresses[server.venue_name] = f"{host}:{bound}"
            server.start()
        if ready is not None:
            ready(addresses)
        await (stop or asyncio.Event()).wait()
    finally:
        for server in servers:
            await server.stop()
        for runner in runners:
            await runner.cleanup()
    return {s.venue_name: {"records_played": s.records_played, **asdict(s.counts)}
            for s in servers}


def serve_captures(paths: list[Path], config: EmulatorConfig,
                   ready: Callable[[dict[str, str]], None] | None = None
                   ) -> dict[str, dict[str, Any]]:
    """Run the emulator in this thread until SIGINT or SIGTERM."""
    import signal

    async def main() -> dict[str, dict[str, Any]]:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, stop.set)
        return await run_emulator(paths, config, ready, stop)

    return asyncio.run(main())
