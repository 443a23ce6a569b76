"""One venue's websocket and REST traffic: connect, subscribe, receive, back off, retry.

Everything received becomes a `CaptureRecord` handed to `deliver`, which the service
writes to the raw capture and feeds to the pipeline in one order, so a replay of the
raw capture meets the same records the live pipeline met.

- Reconnects back off exponentially (factor 2) with full jitter up to a cap; the
  delay resets once a connection has delivered messages again.
- A stream that says nothing for `stale_after_s` is closed and reopened; the loss is
  reported at once (`on_lost`), so its books are invalid from that moment.
- Text frames are received as bytes and decoded here: one that is not UTF-8 is kept in
  the raw capture (as b64) and counted as a parse error, never a reason to reconnect.
- HTTP 429 and 418 (Binance's ban) are honoured for every request to that host: wait
  `Retry-After`, or back off exponentially from 1 s with jitter when it is missing.
- REST snapshot requests spend from a per-minute request-weight budget, kept below
  the venue's published limit and corrected by the venue's used-weight header. The
  weights, limits and error codes are the venue module's facts.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import time
from base64 import b64encode
from collections import deque
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from email.utils import parsedate_to_datetime
from typing import Any
from urllib.parse import parse_qs, urlparse, urlunparse

from collector.capture import CaptureRecord
from collector.daemon.counters import RestCounters, StreamCounters
from collector.venues.base import Venue

log = logging.getLogger("bookcast.daemon")

Deliver = Callable[[CaptureRecord], Awaitable[None]]
Lost = Callable[[str], None]  # the connection is gone, with why
OPEN_TIMEOUT_S = 10.0  # TCP connect plus the websocket handshake
CLOSE_TIMEOUT_S = 2.0  # wait this long for the peer's close frame
READ_BUFFER_BYTES = 1 << 17  # received messages buffered before the socket is paused
PING_INTERVAL_S = 20.0  # keep-alive for quiet connections (venues' own pings are answered)
Offer = Callable[[CaptureRecord], bool]  # deliver now if there is room; False: use Deliver


BUDGET_SHARE = 0.5  # leave half of the IP's REST budget to other processes on the machine
THROTTLE_INITIAL_S = 1.0  # a 429 without Retry-After waits at least this long
THROTTLE_MAX_S = 120.0
BAN_INITIAL_S = 60.0  # a 418 (banned) without Retry-After


class WeightBudget:
    """A sliding one-minute window of spent request weight."""

    def __init__(self, per_minute: int, clock: Callable[[], float] = time.monotonic) -> None:
        self.per_minute = per_minute
        self.clock = clock
        self.spent: deque[tuple[float, int]] = deque()
        self.waits = 0

    def used(self) -> int:
        horizon = self.clock() - 60.0
        while self.spent and self.spent[0][0] <= horizon:
            self.spent.popleft()
        return sum(w for _, w in self.spent)

    def delay_for(self, weight: int) -> float:
        """Seconds until `weight` fits in the window (0 when it fits now)."""
        if self.used() + weight <= self.per_minute or not self.spent:
            return 0.0
        needed = self.used() + weight - self.per_minute
        freed = 0
        for t, w in self.spent:
            freed += w
            if freed >= needed:
                return max(0.0, t + 60.0 - self.clock())
        return 60.0

    async def acquire(self, weight: int) -> None:
        while (delay := self.delay_for(weight)) > 0:
            self.waits += 1
            log.info("rest weight budget spent; waiting", extra={"fields": {
                "delay_s": round(delay, 2), "used": self.used(), "limit": self.per_minute}})
            await asyncio.sleep(delay)
        self.spent.append((self.clock(), weight))

    def observe_used(self, venue_used: int, venue_limit: int) -> None:
        """The venue says how much of the IP's weight is spent; believe it if it is more."""
        share = venue_used * self.per_minute / venue_limit
        gap = int(share) - self.used()
        if gap > 0:
            self.spent.append((self.clock(), gap))


# -- back-off ----------------------------------------------------------------------------------
@dataclass
class Backoff:
    """Exponential back-off with full jitter: uniform(0, min(cap, initial * 2**attempt))."""

    initial_s: float = 0.5
    cap_s: float = 60.0
    attempt: int = 0
    rng: random.Random | None = None

    def next_delay(self) -> float:
        ceiling = min(self.cap_s, self.initial_s * 2 ** min(self.attempt, 30))
        self.attempt += 1
        rng = self.rng or random
        # never below a tenth of the ceiling, so a tight loop cannot form
        return ceiling * (0.1 + 0.9 * rng.random())

    def reset(self) -> None:
        self.attempt = 0


class HostThrottle:
    """A venue host's "slow down": every request to that host waits until it is over.

    A 429 or 418 with Retry-After blocks the host that long; without it, the wait grows
    exponentially from THROTTLE_INITIAL_S (BAN_INITIAL_S for a ban) with jitter, and
    the count of strikes resets after a request succeeds.
    """

    def __init__(self, clock: Callable[[], float] = time.monotonic,
                 rng: random.Random | None = None) -> None:
        self.clock = clock
        self.rng = rng or random.Random()
        self.blocked_until = 0.0
        self.strikes = 0

    def delay(self) -> float:
        return max(0.0, self.blocked_until - self.clock())

    async def wait(self) -> None:
        while (delay := self.delay()) > 0:
            await asyncio.sleep(delay)

    def penalize(self, status: int, retry_after: float | None) -> float:
        """Block the host after a 429/418; returns the seconds it is blocked for."""
        if retry_after is None:
            base = BAN_INITIAL_S if status == 418 else THROTTLE_INITIAL_S
            ceiling = min(THROTTLE_MAX_S if status != 418 else 3600.0,
                          base * 2 ** min(self.strikes, 20))
            retry_after = max(base, ceiling * (0.5 + 0.5 * self.rng.random()))
        self.strikes += 1
        self.blocked_until = max(self.blocked_until, self.clock() + retry_after)
        return retry_after

    def succeeded(self) -> None:
        self.strikes = 0


def retry_after_s(headers: Any) -> float | None:
    """Seconds from a Retry-After header (delta-seconds or an HTTP date), if any."""
    value = headers.get("Retry-After") if headers is not None else None
    if not value:
        return None
    value = value.strip()
    if value.isdigit():
        return float(value)
    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max(0.0, when.timestamp() - time.time())


def with_endpoint(url: str, endpoint: str | None) -> str:
    """The venue's address sent to HOST:PORT over plain ws/http, keeping path and query."""
    if endpoint is None:
        return url
    parts = urlparse(url)
    scheme = {"wss": "ws", "https": "http"}.get(parts.scheme, parts.scheme)
    return urlunparse(parts._replace(scheme=scheme, netloc=endpoint))


class FatalVenueError(Exception):
    """The venue refused the configuration itself (an unknown symbol): stop, do not retry."""


# -- REST --------------------------------------------------------------------------------------
async def fetch_with_retry(session: Any, venue: Venue, url: str, budget: WeightBudget | None,
                           throttle: HostThrottle, backoff: Backoff, counters: RestCounters,
                           stopping: Callable[[], bool] = lambda: False) -> tuple[str, int]:
    """GET a REST snapshot until it succeeds; returns (body, receive time ns).

    429/418 block the host (see HostThrottle); other failures back off. A reply that
    says the venue does not list the symbol is a configuration mistake and raises
    FatalVenueError.
    """
    import aiohttp

    weight = venue.request_weight(url)
    while True:
        await throttle.wait()
        if budget is not None:
            await budget.acquire(weight)
        counters.requests += 1
        try:
            async with session.get(url, timeout=aiohttp.ClientTimeout(total=15)) as resp:
                body = await resp.text()
                ts_ns = time.time_ns()
                header = venue.used_weight_header
                used = resp.headers.get(header) if header else None
                if budget is not None and used and used.isdigit() and venue.rest_weight_limit:
                    budget.observe_used(int(used), venue.rest_weight_limit)
                if resp.status == 200:
                    backoff.reset()
                    throttle.succeeded()
                    return body, ts_ns
                if resp.status in (429, 418):
                    counters.throttled += 1
                    counters.banned += resp.status == 418
                    delay = throttle.penalize(resp.status, retry_after_s(resp.headers))
                    log.warning("rest request throttled", extra={"fields": {
                        "venue": venue.name, "url": url, "status": resp.status,
                        "retry_after_s": round(delay, 3)}})
                    continue
                if venue.refused_symbol(resp.status, body):
                    symbol = parse_qs(urlparse(url).query).get("symbol", ["?"])[0]
                    raise FatalVenueError(f"{venue.name} does not know the symbol '{symbol}' "
                                          f"({body.strip()[:120]}).")
                reason = f"HTTP {resp.status}"
        except (aiohttp.ClientError, TimeoutError, OSError) as exc:
            reason = f"{type(exc).__name__}: {exc}"
        counters.failures += 1
        delay = backoff.next_delay()
        if not stopping():
            log.warning("rest request failed; retrying", extra={"fields": {
                "venue": venue.name, "url": url, "reason": reason,
                "retry_in_s": round(delay, 3)}})
        await asyncio.sleep(delay)


# -- websocket ------------------------------------------------------------------------------------
class StreamConnection:
    """One websocket to a venue, kept open for as long as the daemon runs.

    aiohttp's client, whose frame reader is compiled: at real speed each message
    arrives alone and the per-frame cost of the receiving side is most of the daemon's
    CPU (measured against `websockets`' pure-Python reader: about a quarter less).
    No heartbeat timer is reset per message: the watchdog below pings every
    PING_INTERVAL_S and closes a stream quiet for `stale_after_s`.
    """

    def __init__(self, venue: Venue, symbols: list[str], conn: str, endpoint: str | None,
                 deliver: Deliver, stale_after_s: float, backoff: Backoff,
                 offer: Offer | None = None, on_lost: Lost | None = None) -> None:
        self.venue, self.symbols, self.conn = venue, symbols, conn
        self.url = with_endpoint(venue.ws_url(symbols), endpoint)
        self.deliver = deliver
        self.offer = offer
        self.on_lost = on_lost
        self.stale_after_s = stale_after_s
        self.backoff = backoff
        self.counters = StreamCounters()
        self.ws: Any = None
        self._closing_reason: str | None = None

    async def run(self, stop: asyncio.Event) -> None:
        import aiohttp

        _bound_websocket_read_buffer()
        counters = self.counters
        async with aiohttp.ClientSession(headers={"User-Agent": "bookcast-collector"}) as session:
            while not stop.is_set():
                retry_after: float | None = None
                reason = "closed"
                opened = False
                try:
                    async with asyncio.timeout(OPEN_TIMEOUT_S):
                        ws = await session.ws_connect(
                            self.url, autoping=True, compress=0, max_msg_size=0,
                            decode_text=False,  # decoded here: bad UTF-8 is not a reconnect
                            timeout=aiohttp.ClientWSTimeout(ws_receive=None,
                                                            ws_close=CLOSE_TIMEOUT_S))
                    try:
                        self.ws = ws
                        opened = True
                        if counters.connects:
                            counters.reconnects += 1
                        counters.connects += 1
                        counters.last_message_monotonic = time.monotonic()
                        await self.deliver(CaptureRecord(time.time_ns(), "connect", self.conn,
                                                         None, self.url))
                        log.info("connected", extra={"fields": {
                            "venue": self.venue.name, "conn": self.conn, "url": self.url,
                            "connects": counters.connects}})
                        for text in self.venue.subscribe_messages(self.symbols):
                            await ws.send_str(text)
                            await self.deliver(CaptureRecord(time.time_ns(), "send", self.conn,
                                                             text, self.url))
                        watchdog = asyncio.create_task(self._watch(ws))
                        try:
                            reason = await self._receive(ws)
                        finally:
                            watchdog.cancel()
                        reason = self._closing_reason or reason
                    finally:
                        self.ws = None
                        if self.on_lost is not None and not stop.is_set():
                            self.on_lost(self._closing_reason or reason)
                        with contextlib.suppress(Exception):
                            await ws.close()
                except aiohttp.WSServerHandshakeError as exc:
                    reason = f"handshake refused with HTTP {exc.status}"
                    if exc.status in (429, 418):
                        retry_after = retry_after_s(exc.headers)
                except (aiohttp.ClientError, OSError, TimeoutError) as exc:
                    reason = f"{type(exc).__name__}: {exc}"
                if stop.is_set():
                    break
                if opened:
                    counters.disconnects += 1
                else:
                    counters.connect_failures += 1
                self._closing_reason = None
                delay = retry_after if retry_after is not None else self.backoff.next_delay()
                event = "disconnected; reconnecting" if opened else "connection failed; retrying"
                log.warning(event, extra={"fields": {
                    "venue": self.venue.name, "conn": self.conn, "url": self.url,
                    "reason": reason, "retry_in_s": round(delay, 3),
                    "attempt": self.backoff.attempt}})
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(stop.wait(), delay)

    async def _receive(self, ws: Any) -> str:
        """Deliver every message until the connection ends; returns why it ended."""
        from aiohttp import WSMsgType

        counters = self.counters
        deliver, conn, clock = self.deliver, self.conn, time.time_ns
        # the common case, room in the queue, costs no coroutine; a full queue waits
        offer = self.offer or (lambda rec: False)
        monotonic = time.monotonic
        receive = ws.receive
        text_type, binary_type = WSMsgType.TEXT, WSMsgType.BINARY
        healthy = False
        while True:
            msg = await receive()
            ts = clock()
            kind = msg.type
            if kind is text_type:
                message = msg.data
                try:
                    rec = CaptureRecord(ts, "recv", conn, message.decode())
                except UnicodeDecodeError:
                    counters.invalid_utf8 += 1
                    rec = CaptureRecord(ts, "recv", conn, None, b64=b64encode(message).decode())
            elif kind is binary_type:
                message = msg.data
                rec = CaptureRecord(ts, "recv", conn, None, b64=b64encode(message).decode())
            else:  # close, closing, closed or error: the run loop reconnects
                return _close_reason(ws, msg)
            counters.messages += 1
            counters.bytes += len(message)
            counters.last_message_monotonic = monotonic()
            if not offer(rec):
                await deliver(rec)
            if not healthy:
                healthy = True
                self.backoff.reset()

    async def _watch(self, ws: Any) -> None:
        """Ping now and then; close a stream silent for stale_after_s (the run loop reopens it)."""
        period = max(0.05, min(self.stale_after_s / 4, PING_INTERVAL_S))
        last_ping = time.monotonic()
        while True:
            await asyncio.sleep(period)
            now = time.monotonic()
            quiet = now - self.counters.last_message_monotonic
            if quiet > self.stale_after_s:
                self.counters.stale += 1
                self._closing_reason = f"stale: no message for {quiet:.1f} s"
                log.warning("stale stream", extra={"fields": {
                    "venue": self.venue.name, "conn": self.conn,
                    "quiet_s": round(quiet, 2)}})
                await ws.close(code=4000, message=b"stale")
                return
            if now - last_ping >= PING_INTERVAL_S:
                last_ping = now
                with contextlib.suppress(Exception):
                    await ws.ping()

    async def send(self, text: str) -> bool:
        """Send a message on the open connection (a resubscription); False when closed."""
        ws = self.ws
        if ws is None:
            return False
        try:
            await ws.send_str(text)
        except Exception:
            return False
        await self.deliver(CaptureRecord(time.time_ns(), "send", self.conn, text, self.url))
        return True

    async def close(self) -> None:
        """Close the open connection (shutdown); the run loop sees the stop event and ends."""
        ws = self.ws
        if ws is not None:
            with contextlib.suppress(Exception):
                await ws.close(code=1000, message=b"shutdown")

    async def reconnect(self, reason: str) -> None:
        ws = self.ws
        if ws is not None:
            self._closing_reason = reason
            await ws.close(code=4001, message=b"resync")


def _bound_websocket_read_buffer() -> None:
    """Pause reading a websocket once about READ_BUFFER_BYTES of messages wait in aiohttp.

    aiohttp's bound is twice its DEFAULT_CHUNK_SIZE, 512 KiB: several hundred Binance
    diffs. With the record queue and the kernel's buffers, a fast feed (the emulator at
    --speed 0) then runs that much further ahead of the books, and a snapshot fetched
    during a resync is that much newer than the diffs being processed (far enough to
    skip a whole emulator loop). `ws_connect` takes no setting for it; it reads this
    module constant when it builds the reader, and nothing else in the daemon uses it.
    """
    import aiohttp.client

    if getattr(aiohttp.client, "DEFAULT_CHUNK_SIZE", None) != READ_BUFFER_BYTES // 2:
        aiohttp.client.DEFAULT_CHUNK_SIZE = READ_BUFFER_BYTES // 2  # type: ignore[attr-defined]


def _close_reason(ws: Any, msg: Any) -> str:
    if msg.type.name == "ERROR":
        return f"{type(msg.data).__name__}: {msg.data}"
    code = ws.close_code if ws.close_code is not None else msg.data
    text = msg.extra if isinstance(msg.extra, str) else ""
    return f"closed by the peer (code {code}{', ' + text if text else ''})"
