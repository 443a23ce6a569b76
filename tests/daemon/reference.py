"""The states an ORIGINAL capture's books pass through, rebuilt independently.

Written from each venue's documented protocol with the plain `OrderBook` and nothing
of the venue modules, the pipeline or the daemon, so a row the daemon wrote can be
checked against what the exchange's book really was: a correct row is one of these
states (compared at the row's depth, or at the depth the venue verifies).
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path

import orjson

from collector.book import OrderBook, parse_units
from collector.capture import merge_captures

ID_SHIFT = 10**12  # the emulator's later loops move Binance ids up by this


@dataclass
class ReferenceStates:
    """Per symbol: the book's top levels after every update (by sequence id where the
    venue has one, else as a set), at `depth` levels."""

    depth: int
    by_seq: dict[str, dict[int, tuple]] = field(default_factory=lambda: defaultdict(dict))
    states: dict[str, set[tuple]] = field(default_factory=lambda: defaultdict(set))
    _cut: dict[tuple[str, int], set[tuple]] = field(default_factory=dict)

    def record(self, symbol: str, book: OrderBook, seq: int | None = None) -> None:
        top = _frozen(book.top(self.depth))
        self.states[symbol].add(top)
        if seq is not None:
            self.by_seq[symbol].setdefault(seq, top)

    def holds(self, symbol: str, row: tuple, seq: int | None, levels: int | None = None) -> bool:
        """Whether a row's book is a state the capture's book passed (its first `levels`)."""
        top = _frozen(row)
        if levels is not None:
            top = tuple(side[:levels] for side in top)
        seqs = self.by_seq.get(symbol)
        if seqs and seq is not None and levels is None:
            # a later loop of the emulator moved the ids up by whole ID_SHIFTs
            while seq > 0 and seq not in seqs:
                seq -= ID_SHIFT
            return seqs.get(seq) == top
        if levels is None:
            return top in self.states[symbol]
        cut = self._cut.get((symbol, levels))
        if cut is None:
            cut = self._cut[(symbol, levels)] = {tuple(side[:levels] for side in s)
                                                 for s in self.states[symbol]}
        return top in cut


def _frozen(top: tuple) -> tuple:
    return tuple(tuple(side) for side in top)


def reference_states(venue: str, captures: list[Path], depth: int) -> ReferenceStates:
    ref = ReferenceStates(depth)
    rebuild = {"binance-spot": _binance, "binance-usdm": _binance,
               "coinbase-exchange": _coinbase_exchange, "coinbase-advanced": _coinbase_advanced,
               "kraken": _kraken}[venue]
    rebuild(venue, captures, ref)
    return ref


def _binance(venue: str, captures: list[Path], ref: ReferenceStates) -> None:
    """Diffs buffered until the REST snapshot; those inside it dropped; then in order."""
    books: dict[str, OrderBook] = {}
    last: dict[str, int] = {}
    buffered: dict[str, list[dict]] = defaultdict(list)
    unclaimed: list[dict] = []  # a snapshot that names no symbol, before any diff
    for rec in merge_captures(captures):
        if rec.kind == "http" and rec.data and "lastUpdateId" in rec.data:
            # the request names the symbol; a recorded one of one symbol may not
            url = rec.url or ""
            if "symbol=" in url:
                symbol = url.split("symbol=")[1].split("&")[0].upper()
            elif len(buffered) == 1:
                symbol = next(iter(buffered))
            else:
                unclaimed.append(orjson.loads(rec.data))
                continue
            _binance_snapshot(venue, symbol, orjson.loads(rec.data), books, last, buffered, ref)
        elif rec.kind == "recv" and rec.data and '"depthUpdate"' in rec.data:
            diff = orjson.loads(rec.data)["data"]
            if diff["s"] not in books and unclaimed:
                _binance_snapshot(venue, diff["s"], unclaimed.pop(0), books, last, buffered, ref)
            if diff["s"] in books:
                _binance_apply(venue, books, last, diff, ref)
            else:
                buffered[diff["s"]].append(diff)


def _binance_snapshot(venue: str, symbol: str, reply: dict, books: dict[str, OrderBook],
                      last: dict[str, int], buffered: dict[str, list[dict]],
                      ref: ReferenceStates) -> None:
    book = books[symbol] = OrderBook()
    book.load([(parse_units(p), parse_units(q)) for p, q in reply["bids"]],
              [(parse_units(p), parse_units(q)) for p, q in reply["asks"]])
    last[symbol] = reply["lastUpdateId"]
    ref.record(symbol, book, last[symbol])
    for diff in buffered.pop(symbol, []):
        _binance_apply(venue, books, last, diff, ref)


def _binance_apply(venue: str, books: dict[str, OrderBook], last: dict[str, int],
                   diff: dict, ref: ReferenceStates) -> None:
    symbol = diff["s"]
    inside = diff["u"] <= last[symbol] if venue == "binance-spot" else diff["u"] < last[symbol]
    if inside:
        return
    book = books[symbol]
    for p, q in diff["b"]:
        book.set_bid(parse_units(p), parse_units(q))
    for p, q in diff["a"]:
        book.set_ask(parse_units(p), parse_units(q))
    last[symbol] = diff["u"]
    ref.record(symbol, book, diff["u"])


def _coinbase_exchange(venue: str, captures: list[Path], ref: ReferenceStates) -> None:
    books: dict[str, OrderBook] = {}
    for rec in merge_captures(captures):
        if rec.kind != "recv" or not rec.data:
            continue
        msg = orjson.loads(rec.data)
        kind = msg.get("type")
        if kind == "snapshot":
            book = books[msg["product_id"]] = OrderBook()
            book.load([(parse_units(p), parse_units(q)) for p, q, *_ in msg["bids"]],
                      [(parse_units(p), parse_units(q)) for p, q, *_ in msg["asks"]])
        elif kind == "l2update" and msg["product_id"] in books:
            book = books[msg["product_id"]]
            for side, p, q in msg["changes"]:
                (book.set_bid if side == "buy" else book.set_ask)(parse_units(p), parse_units(q))
        else:
            continue
        ref.record(msg["product_id"], book)


def _coinbase_advanced(venue: str, captures: list[Path], ref: ReferenceStates) -> None:
    books: dict[str, OrderBook] = {}
    for rec in merge_captures(captures):
        if rec.kind != "recv" or not rec.data or '"l2_data"' not in rec.data:
            continue
        for event in orjson.loads(rec.data)["events"]:
            symbol = event["product_id"]
            if event["type"] == "snapshot":
                books[symbol] = OrderBook()
            book = books.get(symbol)
            if book is None:
                continue
            for u in event["updates"]:
                setter = book.set_bid if u["side"] == "bid" else book.set_ask
                setter(parse_units(u["price_level"]), parse_units(u["new_quantity"]))
            ref.record(symbol, book)


def _kraken(venue: str, captures: list[Path], ref: ReferenceStates) -> None:
    """Snapshot, then each message's entries in order, truncated to the channel's depth."""
    books: dict[str, OrderBook] = {}
    for rec in merge_captures(captures):
        if rec.kind != "recv" or not rec.data or not rec.data.startswith("["):
            continue
        msg = orjson.loads(rec.data)
        channel, pair = msg[-2], msg[-1]
        if not channel.startswith("book"):
            continue
        depth = int(channel.partition("-")[2] or 10)
        payloads = msg[1:-2]
        if "as" in payloads[0] or "bs" in payloads[0]:
            book = books[pair] = OrderBook()
            book.load([(parse_units(e[0]), parse_units(e[1])) for e in payloads[0].get("bs", [])],
                      [(parse_units(e[0]), parse_units(e[1])) for e in payloads[0].get("as", [])])
        elif pair in books:
            book = books[pair]
            for payload in payloads:
                for key, setter in (("a", book.set_ask), ("b", book.set_bid)):
                    for entry in payload.get(key, []):
                        setter(parse_units(entry[0]), parse_units(entry[1]))
        else:
            continue
        book.truncate(depth)
        ref.record(pair, book)
