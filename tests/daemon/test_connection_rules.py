"""Back-off, Retry-After, request weight and endpoint rewriting, as plain functions."""

from __future__ import annotations

import random

from collector.daemon.connection import (
    BAN_INITIAL_S,
    THROTTLE_INITIAL_S,
    Backoff,
    HostThrottle,
    WeightBudget,
    retry_after_s,
    with_endpoint,
)
from collector.venues import venue_class


def test_backoff_doubles_up_to_the_cap_with_jitter_and_resets() -> None:
    backoff = Backoff(initial_s=0.5, cap_s=8.0, rng=random.Random(1))
    ceilings = [0.5, 1, 2, 4, 8, 8, 8]
    for ceiling in ceilings:
        delay = backoff.next_delay()
        assert 0.1 * ceiling <= delay <= ceiling
    delays = {round(Backoff(0.5, 8.0, attempt=4, rng=random.Random(s)).next_delay(), 6)
              for s in range(20)}
    assert len(delays) == 20  # jitter: reconnecting clients do not move in step
    backoff.reset()
    assert backoff.next_delay() <= 0.5


def test_retry_after_reads_seconds_and_http_dates() -> None:
    assert retry_after_s({"Retry-After": "7"}) == 7.0
    assert retry_after_s({}) is None
    future = retry_after_s({"Retry-After": "Wed, 21 Oct 2065 07:28:00 GMT"})
    assert future is not None and future > 1e8


def test_weight_budget_waits_when_the_minute_is_spent_and_believes_the_venue() -> None:
    now = [1000.0]
    budget = WeightBudget(600, clock=lambda: now[0])
    budget.spent.append((now[0], 500))
    assert budget.delay_for(50) == 0.0
    assert budget.delay_for(250) == 60.0  # only when the first request leaves the window
    now[0] += 30
    assert budget.delay_for(250) == 30.0
    now[0] += 31
    assert budget.delay_for(250) == 0.0
    budget.observe_used(venue_used=5400, venue_limit=6000)  # other processes spent 90 %
    assert budget.used() == 540


def test_depth_weights_follow_binance_limits() -> None:
    spot = venue_class("binance-spot")(None)  # type: ignore[arg-type]
    url = "https://api.binance.com/api/v3/depth?symbol=BTCUSDT&limit="
    assert [spot.request_weight(url + str(n)) for n in (5, 500, 1000, 5000)] == [5, 25, 50, 250]
    usdm = venue_class("binance-usdm")(None)  # type: ignore[arg-type]
    url = "https://fapi.binance.com/fapi/v1/depth?symbol=BTCUSDT&limit="
    assert [usdm.request_weight(url + str(n)) for n in (50, 100, 500, 1000)] == [2, 5, 10, 20]
    assert (spot.rest_weight_limit, usdm.rest_weight_limit) == (6000, 2400)


def test_a_429_without_retry_after_blocks_the_host_from_one_second_growing_with_jitter() -> None:
    now = [0.0]
    throttle = HostThrottle(clock=lambda: now[0], rng=random.Random(3))
    waits = [throttle.penalize(429, None) for _ in range(6)]
    assert all(w >= THROTTLE_INITIAL_S for w in waits)
    # the ceiling doubles per strike; jitter keeps each in its upper half
    for strike, wait in enumerate(waits):
        assert wait <= THROTTLE_INITIAL_S * 2 ** strike
    assert waits[-1] >= 0.5 * THROTTLE_INITIAL_S * 2 ** 5
    assert throttle.delay() == max(waits)  # every request to the host waits this long
    throttle.succeeded()
    assert throttle.penalize(429, None) <= 2 * THROTTLE_INITIAL_S
    # Retry-After, when given, is obeyed as it is; a 418 (a ban) waits far longer
    assert HostThrottle(clock=lambda: 0.0).penalize(429, 7.0) == 7.0
    assert HostThrottle(clock=lambda: 0.0).penalize(418, None) >= BAN_INITIAL_S


def test_an_endpoint_keeps_the_venue_path_and_query_over_plain_transport() -> None:
    url = "wss://stream.binance.com:9443/stream?streams=btcusdt@depth@100ms"
    assert with_endpoint(url, "127.0.0.1:8765") == \
        "ws://127.0.0.1:8765/stream?streams=btcusdt@depth@100ms"
    assert with_endpoint("https://api.binance.com/api/v3/depth?symbol=BTCUSDT&limit=5000",
                         "127.0.0.1:8765") == \
        "http://127.0.0.1:8765/api/v3/depth?symbol=BTCUSDT&limit=5000"
    assert with_endpoint(url, None) == url


def test_rest_throttling_is_shared_by_every_request_to_the_host_and_grows_from_a_second(
        ) -> None:
    """A real HTTP server on 127.0.0.1 answers 429 without Retry-After twice, then 200.
    Two symbols' requests share the host's throttle: none is sent while it blocks."""
    import asyncio
    import time

    import aiohttp
    from aiohttp import web

    from collector.daemon.connection import fetch_with_retry
    from collector.daemon.counters import RestCounters

    arrivals: list[float] = []

    async def depth(request: web.Request) -> web.Response:
        arrivals.append(time.monotonic())
        if len(arrivals) <= 2:
            return web.json_response({"code": -1003, "msg": "Too many requests."}, status=429)
        return web.json_response({"lastUpdateId": 1, "bids": [], "asks": []})

    async def scenario() -> tuple[RestCounters, HostThrottle]:
        app = web.Application()
        app.router.add_get("/api/v3/depth", depth)
        runner = web.AppRunner(app)
        await runner.setup()
        site = web.TCPSite(runner, "127.0.0.1", 0)
        await site.start()
        port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
        venue = venue_class("binance-spot")(None)  # type: ignore[arg-type]
        throttle, counters = HostThrottle(), RestCounters()
        try:
            async with aiohttp.ClientSession() as session:
                urls = [f"http://127.0.0.1:{port}/api/v3/depth?symbol={s}&limit=5"
                        for s in ("BTCUSDT", "ETHUSDT")]
                await asyncio.gather(*(fetch_with_retry(session, venue, url, None, throttle,
                                                        Backoff(), counters) for url in urls))
        finally:
            await runner.cleanup()
        return counters, throttle

    counters, throttle = asyncio.run(scenario())
    assert counters.throttled == 2 and counters.requests == 4
    # after the first 429 nothing reached the host for at least a second (load can only
    # make the wait longer), and the second 429 blocked it longer still
    assert arrivals[2] - arrivals[1] >= THROTTLE_INITIAL_S
    assert throttle.strikes == 0  # reset by the success
