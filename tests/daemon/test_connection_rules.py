"""Back-off, Retry-After, request weight and endpoint rewriting, as plain functions."""

from __future__ import annotations

import random

from collector.daemon.connection import (
    Backoff,
    WeightBudget,
    depth_request_weight,
    retry_after_s,
    with_endpoint,
)


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
    spot = "https://api.binance.com/api/v3/depth?symbol=BTCUSDT&limit="
    assert [depth_request_weight("binance-spot", spot + str(n)) for n in (5, 500, 1000, 5000)] \
        == [5, 25, 50, 250]
    usdm = "https://fapi.binance.com/fapi/v1/depth?symbol=BTCUSDT&limit="
    assert [depth_request_weight("binance-usdm", usdm + str(n)) for n in (50, 100, 500, 1000)] \
        == [2, 5, 10, 20]


def test_an_endpoint_keeps_the_venue_path_and_query_over_plain_transport() -> None:
    url = "wss://stream.binance.com:9443/stream?streams=btcusdt@depth@100ms"
    assert with_endpoint(url, "127.0.0.1:8765") == \
        "ws://127.0.0.1:8765/stream?streams=btcusdt@depth@100ms"
    assert with_endpoint("https://api.binance.com/api/v3/depth?symbol=BTCUSDT&limit=5000",
                         "127.0.0.1:8765") == \
        "http://127.0.0.1:8765/api/v3/depth?symbol=BTCUSDT&limit=5000"
    assert with_endpoint(url, None) == url
