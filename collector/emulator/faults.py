"""Faults the emulator injects, per connection, and the count of each it injected.

Counts are served per venue at `/_emulator/stats` (and printed on exit), so a test
compares what was injected with what the collector's /metrics say it detected.
"""

from __future__ import annotations

import contextlib
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

from aiohttp import WSMsgType, web

if TYPE_CHECKING:
    from collector.emulator.server import VenueServer

log = logging.getLogger("bookcast.emulator")

# a text frame whose bytes are not UTF-8 (a lone continuation byte, then valid text)
BAD_UTF8 = b"\x80\xfe{\"bookcast\":\"not utf-8\"}"


@dataclass
class FaultPlan:
    """Which faults to inject; None or 0 disables one."""

    drop_every_s: float | None = None  # close every connection this often (wall seconds)
    gap_every: int | None = None  # skip every N-th book update of a connection
    corrupt_every: int | None = None  # garble every N-th book update of a connection
    stall_s: float | None = None  # go quiet on a connection for this long ...
    stall_after: int = 500  # ... once it has been sent this many messages
    throttle_rest: int = 0  # answer the first N REST requests 429 with Retry-After: 1
    bad_utf8_every: int | None = None  # send an extra non-UTF-8 text frame every N messages


@dataclass
class FaultCounts:
    drops: int = 0
    gaps: int = 0
    corruptions: int = 0
    stalls: int = 0
    stalled_messages: int = 0  # messages a stall kept from the client (lost, as on a venue)
    throttled: int = 0
    bad_utf8: int = 0
    followed: int = 0  # skipped or garbled updates a later update of the book followed
    resubscribes: int = 0  # resubscriptions answered with a fresh snapshot


class Client:
    """One websocket connection and the faults it has been given.

    `noticeable(symbol, text)` says whether the client could notice a skipped or
    garbled update here (the Binance timeline injects only those; see binance.py).
    """

    def __init__(self, server: VenueServer, ws: web.WebSocketResponse,
                 noticeable: Callable[[str | None, str], bool] | None = None) -> None:
        self.server, self.ws = server, ws
        self.plan, self.counts, self.venue = server.config.faults, server.counts, server.venue_name
        self.noticeable = noticeable
        self.sent = 0
        self.offered = 0
        self.updates_offered = 0
        self.gap_due = False
        self.corrupt_due = False
        self.stall_until = 0.0
        self.stalled = False
        self.unfollowed: set[str | None] = set()  # symbols with a fault no update followed yet

    async def deliver(self, text: str, symbol: str | None, is_update: bool) -> None:
        """Send one message of the venue's, unless a fault takes it."""
        plan, counts = self.plan, self.counts
        if self.ws.closed:
            return
        self.offered += 1
        if self.stalling():
            return
        if plan.stall_s and not self.stalled and self.sent >= plan.stall_after:
            self.stalled = True
            counts.stalls += 1
            counts.stalled_messages += 1
            self.stall_until = time.monotonic() + plan.stall_s
            log.info("stalling a %s connection for %.1f s", self.venue, plan.stall_s)
            return
        if is_update and (plan.gap_every or plan.corrupt_every):
            self.updates_offered += 1
            if plan.gap_every and self.updates_offered % plan.gap_every == 0:
                self.gap_due = True
            if plan.corrupt_every and self.updates_offered % plan.corrupt_every == 0:
                self.corrupt_due = True
            if (self.gap_due or self.corrupt_due) and (
                    self.noticeable is None or self.noticeable(symbol, text)):
                if self.gap_due:
                    self.gap_due = False
                    counts.gaps += 1
                    self.unfollowed.add(symbol)
                    return
                self.corrupt_due = False
                counts.corruptions += 1
                await self.send(text[: len(text) // 2])  # cut mid-message: no longer JSON
                self.unfollowed.add(symbol)
                return
            if symbol in self.unfollowed:
                self.unfollowed.discard(symbol)
                counts.followed += 1
        await self.send(text)
        if plan.bad_utf8_every and self.offered % plan.bad_utf8_every == 0:
            counts.bad_utf8 += 1
            with contextlib.suppress(ConnectionError, RuntimeError):
                await self.ws.send_frame(BAD_UTF8, WSMsgType.TEXT)

    def stalling(self) -> bool:
        """In a stall the venue sends nothing to this connection, replies included."""
        if self.stall_until:
            if time.monotonic() < self.stall_until:
                self.counts.stalled_messages += 1
                return True
            self.stall_until = 0.0
        return False

    async def send(self, text: str) -> None:
        """Send a reply to what the client asked (only a stall keeps it)."""
        if self.stalling():
            return
        self.sent += 1
        self.server.messages_sent += 1
        with contextlib.suppress(ConnectionError, RuntimeError):
            await self.ws.send_str(text)  # a client that went away is cleaned up by its handler
