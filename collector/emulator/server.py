"""The exchange emulator: captures played back on 127.0.0.1 in each venue's own protocol.

One HTTP + websocket server per venue (each on its own port, since Coinbase and
Kraken both live at `/`), from the table `SERVERS`, one module per protocol family:

- binance.py: REST-snapshot venues (Binance spot and USDⓈ-M), one shared timeline per
  venue; `GET .../depth` answers from the exchange's book at the current point.
- coinbase.py, kraken.py: subscribe venues, where the snapshot arrives over the
  websocket; each connection gets the recorded session from its start, and a
  resubscription (unsubscribe + subscribe) is answered as the venue answers it, with a
  fresh snapshot of the book at that point of the session (sessions.py).

Faults are injected per connection and counted per venue (faults.py), served as JSON
at `/_emulator/stats` so that tests compare them with what the collector saw.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import logging
from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from aiohttp import web

from bookcast.errors import UserError
from collector.capture import CaptureRecord
from collector.emulator.exchange import ExchangeBook
from collector.emulator.faults import Client, FaultCounts, FaultPlan
from collector.emulator.timeline import paced, timeline
from collector.replay import group_by_venue

log = logging.getLogger("bookcast.emulator")

STATS_PATH = "/_emulator/stats"


@dataclass
class EmulatorConfig:
    host: str = "127.0.0.1"
    port: int = 0  # 0: any free port; otherwise venues get port, port+1, ...
    speed: float = 1.0  # 0: as fast as the client reads
    loops: int = 1
    faults: FaultPlan = field(default_factory=FaultPlan)


class VenueServer:
    """One venue's emulated endpoints, its playback and its fault counts."""

    def __init__(self, venue: str, captures: list[Path], config: EmulatorConfig) -> None:
        self.venue_name = venue
        self.captures = captures
        self.config = config
        self.book = ExchangeBook(venue)  # the shared timeline's; sessions keep their own
        self.clients: set[Client] = set()
        self.counts = FaultCounts()
        self.connections = 0
        self.records_played = 0
        self.messages_sent = 0
        self.snapshots_served = 0
        self.done = False
        self._tasks: list[asyncio.Task] = []

    # -- the application ------------------------------------------------------------------
    def app(self) -> web.Application:
        app = web.Application()
        app.router.add_get(STATS_PATH, self.stats)
        self.add_routes(app)
        return app

    def add_routes(self, app: web.Application) -> None:
        raise NotImplementedError

    def start(self) -> None:
        if self.config.faults.drop_every_s:
            self._tasks.append(asyncio.create_task(self.drop_connections()))

    async def stop(self) -> None:
        for task in self._tasks:
            task.cancel()
        for client in list(self.clients):
            with contextlib.suppress(Exception):
                await asyncio.wait_for(client.ws.close(code=1001), 1.0)

    async def stats(self, request: web.Request) -> web.Response:
        return web.json_response(self.summary())

    def summary(self) -> dict[str, Any]:
        return {"venue": self.venue_name, "records_played": self.records_played,
                "done": self.done, "clients": len(self.clients),
                "messages_sent": self.messages_sent, "connections": self.connections,
                "snapshots_served": self.snapshots_served, **asdict(self.counts)}

    # -- records ----------------------------------------------------------------------------
    def timeline(self) -> Iterator[tuple[CaptureRecord, float]]:
        return timeline(self.captures, self.config.loops)

    def paced(self, records: Iterator[tuple[CaptureRecord, float]]
              ) -> AsyncIterator[CaptureRecord]:
        return paced(records, self.config.speed)

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


def server_class(venue: str) -> type[VenueServer]:
    from collector.emulator.binance import BinanceServer
    from collector.emulator.coinbase import CoinbaseAdvancedServer, CoinbaseExchangeServer
    from collector.emulator.kraken import KrakenServer

    servers: dict[str, type[VenueServer]] = {
        "binance-spot": BinanceServer, "binance-usdm": BinanceServer,
        "coinbase-exchange": CoinbaseExchangeServer,
        "coinbase-advanced": CoinbaseAdvancedServer, "kraken": KrakenServer}
    return servers[venue]


async def run_emulator(paths: list[Path], config: EmulatorConfig,
                       ready: Callable[[dict[str, str]], None] | None = None,
                       stop: asyncio.Event | None = None) -> dict[str, dict[str, Any]]:
    """Serve the captures until `stop` is set; returns each venue's fault counts."""
    if config.speed < 0:
        raise UserError(f"The speed {config.speed} must be positive (or 0 for as fast as "
                        f"possible).")
    groups = group_by_venue([Path(p) for p in paths], None)
    servers = [server_class(venue)(venue, files, config) for venue, files in groups.items()]
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
