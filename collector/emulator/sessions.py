"""Subscribe venues (Coinbase, Kraken): one recorded session per connection, and resubscribes.

Each connection that subscribes gets the recorded session from its start: subscription
replies, snapshots, updates. The session also runs the records it plays through the
venue module's sync rule (its own `ExchangeBook`), so it knows the book the exchange
holds at every point. A client that unsubscribes a product's book stops receiving
its book messages; when it subscribes again, it gets the venue's confirmation and a
fresh snapshot of that book, as the venue would send, then the updates that follow.

The protocol families differ only in how a message names its product and whether it
is a book update, how a request reads, and how the replies are spelled (the venue
modules spell them); subclasses in coinbase.py and kraken.py say that.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

import orjson
from aiohttp import WSMsgType, web

from collector.emulator.exchange import ExchangeBook
from collector.emulator.faults import Client
from collector.emulator.server import VenueServer

log = logging.getLogger("bookcast.emulator")

SNAPSHOT_WAIT_S = 10.0  # a resubscribe waits this long for the session's book to be valid


class Session:
    """One connection's playback: the client, the exchange's books, what is unsubscribed."""

    def __init__(self, server: SubscribeServer, client: Client) -> None:
        self.server, self.client = server, client
        self.exchange = ExchangeBook(server.venue_name)
        self.unsubscribed: set[str] = set()
        self.subscribed: set[str] = set()  # what the client asked for: only that is sent
        self.sequence = 0  # for venues that number a connection's messages

    async def emit(self, text: str, symbol: str | None, is_update: bool) -> None:
        """A message of the recorded session (faults may take it)."""
        await self.client.deliver(self.server.number(self, text), symbol, is_update)

    async def reply(self, text: str) -> None:
        """A message answering the client (no fault takes it)."""
        await self.client.send(self.server.number(self, text))


class SubscribeServer(VenueServer):
    ws_path = "/"

    # -- what a protocol family says ------------------------------------------------------
    def classify(self, text: str) -> tuple[str | None, bool, bool]:
        """(symbol, is a book update, is a book message) of a recorded message."""
        raise NotImplementedError

    def book_requests(self, msg: Any) -> list[tuple[str, str]]:
        """[(subscribe|unsubscribe, symbol)] of a client message, for book channels."""
        raise NotImplementedError

    def subscribed_symbols(self, msg: Any) -> list[str]:
        """The symbols a client's subscribe message names, whatever the channel."""
        raise NotImplementedError

    def unsubscribed_replies(self, session: Session, symbol: str) -> list[str]:
        raise NotImplementedError

    def subscribed_replies(self, session: Session, symbol: str) -> list[str]:
        """The confirmation and a snapshot of the session's book of `symbol`."""
        raise NotImplementedError

    def number(self, session: Session, text: str) -> str:
        """The message as sent on this connection (venues that number messages renumber)."""
        return text

    # -- serving ----------------------------------------------------------------------------
    def add_routes(self, app: web.Application) -> None:
        app.router.add_get("/", self.session)
        if self.ws_path != "/":
            app.router.add_get(self.ws_path, self.session)

    async def session(self, request: web.Request) -> web.StreamResponse:
        ws = web.WebSocketResponse(heartbeat=None, max_msg_size=0)
        await ws.prepare(request)
        client = Client(self, ws)
        session = Session(self, client)
        self.clients.add(client)
        self.connections += 1
        player: asyncio.Task | None = None
        try:
            async for msg in ws:
                if msg.type != WSMsgType.TEXT:
                    continue
                try:
                    request = orjson.loads(msg.data)
                except orjson.JSONDecodeError:
                    continue
                books = self.book_requests(request)
                if any(action == "unsubscribe" or symbol in session.unsubscribed
                       for action, symbol in books):
                    await self.answer(session, books)
                    continue
                # the subscribe messages a connection opens with (there may be several)
                session.subscribed.update(self.subscribed_symbols(request))
                if player is None and session.subscribed:
                    player = asyncio.create_task(self.play(session))
        finally:
            self.clients.discard(client)
            if player is not None:
                player.cancel()
        return ws

    async def play(self, session: Session) -> None:
        """The recorded session from its start: replies, snapshots and updates, in order."""
        records = ((rec, offset) for rec, offset in self.timeline() if rec.kind == "recv")
        async for rec in self.paced(records):
            self.records_played += 1
            if rec.data is None:
                continue
            session.exchange.feed(rec)
            symbol, is_update, is_book = self.classify(rec.data)
            if symbol is not None and symbol not in session.subscribed:
                continue  # a product the client did not ask for
            if is_book and symbol in session.unsubscribed:
                continue  # the client unsubscribed this book: the venue sends nothing of it
            await session.emit(rec.data, symbol, is_update)
        self.done = True

    async def answer(self, session: Session, books: list[tuple[str, str]]) -> None:
        """A client's unsubscribe or resubscribe, answered as the venue answers it.

        Only a subscribe after an unsubscribe is a resubscription; the subscribe messages
        a connection opens with are answered by the recording.
        """
        for action, symbol in books:
            if action == "unsubscribe":
                session.unsubscribed.add(symbol)
                for reply in self.unsubscribed_replies(session, symbol):
                    await session.reply(reply)
            elif symbol in session.unsubscribed:
                state = await self._valid_book(session, symbol)
                if state is None:
                    continue
                session.unsubscribed.discard(symbol)
                self.counts.resubscribes += 1
                self.snapshots_served += 1
                for reply in self.subscribed_replies(session, symbol):
                    await session.reply(reply)

    async def _valid_book(self, session: Session, symbol: str) -> Any:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + SNAPSHOT_WAIT_S
        while loop.time() < deadline:
            state = session.exchange.get(symbol)
            if state is not None and state.valid:
                return state
            await asyncio.sleep(0.01)
        log.warning("no book of %s to resubscribe with", symbol)
        return None
