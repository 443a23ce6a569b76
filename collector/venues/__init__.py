"""The venue table: names -> venue modules (one file per venue)."""

from __future__ import annotations

from bookcast.errors import UserError
from collector.venues.base import Venue
from collector.venues.binance_spot import BinanceSpot
from collector.venues.binance_usdm import BinanceUsdm
from collector.venues.coinbase_advanced import CoinbaseAdvanced
from collector.venues.coinbase_exchange import CoinbaseExchange
from collector.venues.kraken import Kraken

VENUES: dict[str, type[Venue]] = {
    "binance-spot": BinanceSpot,
    "binance-usdm": BinanceUsdm,
    "coinbase-advanced": CoinbaseAdvanced,
    "coinbase-exchange": CoinbaseExchange,
    "kraken": Kraken,
}
assert all(name == cls.name for name, cls in VENUES.items())


def venue_class(name: str) -> type[Venue]:
    try:
        return VENUES[name]
    except KeyError:
        known = ", ".join(sorted(VENUES))
        raise UserError(f"Unknown venue '{name}'; known venues are: {known}.") from None


def check_symbol(venue: str, symbol: str) -> None:
    """A symbol the venue cannot spell is refused before connecting (DESIGN.md spelling)."""
    cls = venue_class(venue)
    if not cls.symbol_pattern.match(symbol):
        raise UserError(f"'{symbol}' is not a {venue} symbol; {venue} spells symbols as "
                        f"{cls.symbol_spelling}.")


def detect_venue(conns: list[str], urls: list[str]) -> str | None:
    """Which venue recorded a capture, from its connection names and addresses."""
    from urllib.parse import urlparse

    hostnames = {urlparse(url).hostname for url in urls if "://" in url}
    for cls in VENUES.values():
        if hostnames & set(cls.hosts):
            return cls.name
    for cls in sorted(VENUES.values(), key=lambda c: -max((len(p) for p in c.conn_prefixes),
                                                           default=0)):
        for conn in conns:
            if any(conn.startswith(prefix) for prefix in cls.conn_prefixes):
                return cls.name
    return None


__all__ = ["VENUES", "Venue", "check_symbol", "detect_venue", "venue_class"]
