"""The order book keeps exact prices and sizes and reports best-first levels."""

from __future__ import annotations

import random
from decimal import Decimal

import pytest
from hypothesis import given
from hypothesis import strategies as st

from collector.book import UNIT, OrderBook, format_units, parse_units


def test_parse_units_is_exact_where_floats_drift():
    # 0.1 + 0.2 != 0.3 in floats; in units they add up exactly
    assert parse_units("0.1") + parse_units("0.2") == parse_units("0.3")
    assert parse_units("61737.63000000") == 61737_63 * 10**8
    assert parse_units("1") == UNIT
    assert parse_units("0.0000000001") == 1
    assert parse_units("5.000000000000") == 5 * UNIT  # trailing zeros past 10 decimals are fine


@pytest.mark.parametrize("bad", ["1e-5", "-1.0", "abc", "1.00000000001", "", "1.2.3"])
def test_parse_units_rejects_what_it_cannot_hold_exactly(bad):
    with pytest.raises(ValueError):
        parse_units(bad)


@given(st.decimals(min_value=0, max_value=10**9, places=8, allow_nan=False,
                   allow_infinity=False))
def test_parse_then_format_round_trips_any_8_decimal_price(value: Decimal):
    text = f"{value:.8f}"
    assert format_units(parse_units(text), 8) == text
    assert parse_units(text) / UNIT == float(text)  # one correctly rounded division


def test_levels_set_delete_and_best_first_order():
    book = OrderBook()
    book.load([(parse_units("100.0"), parse_units("1")), (parse_units("99.5"), parse_units("2"))],
              [(parse_units("100.5"), parse_units("3")), (parse_units("101"), parse_units("4"))])
    assert book.best_bid() == (parse_units("100.0"), UNIT)
    assert book.best_ask() == (parse_units("100.5"), 3 * UNIT)
    book.set_bid(parse_units("100.2"), parse_units("5"))
    book.set_ask(parse_units("100.5"), 0)  # zero size deletes
    assert book.best_bid()[0] == parse_units("100.2")
    assert book.best_ask()[0] == parse_units("101")
    bid_px, bid_sz, ask_px, ask_sz = book.top(2)
    assert bid_px == [100.2, 100.0] and bid_sz == [5.0, 1.0]
    assert ask_px == [101.0] and ask_sz == [4.0]
    assert not book.is_crossed()
    book.set_bid(parse_units("101"), UNIT)
    assert book.is_crossed()


def test_deleting_a_missing_level_is_harmless():
    book = OrderBook()
    book.set_bid(parse_units("1"), 0)
    book.set_ask(parse_units("1"), 0)
    assert book.best_bid() is None and book.best_ask() is None and not book.is_crossed()


def test_truncate_keeps_the_best_levels():
    book = OrderBook()
    book.load([(p * UNIT, UNIT) for p in range(1, 11)], [(p * UNIT, UNIT) for p in range(11, 21)])
    book.truncate(3)
    assert [p // UNIT for p, _ in book.bids()] == [10, 9, 8]
    assert [p // UNIT for p, _ in book.asks()] == [11, 12, 13]


def test_book_matches_a_brute_force_dict_under_random_updates():
    rng = random.Random(7)
    book, bids, asks = OrderBook(), {}, {}
    for _ in range(5000):
        side = rng.random() < 0.5
        price = rng.randrange(1, 400) * 10**8
        size = rng.choice([0, 0, rng.randrange(1, 10**9)])
        (book.set_bid if side else book.set_ask)(price, size)
        target = bids if side else asks
        if size:
            target[price] = size
        else:
            target.pop(price, None)
    assert book.bids() == sorted(bids.items(), key=lambda kv: -kv[0])
    assert book.asks() == sorted(asks.items())
    assert book.n_bids == len(bids) and book.n_asks == len(asks)
