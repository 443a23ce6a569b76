"""The venue table: names -> venue modules (one file per venue)."""

from __future__ import annotations

from bookcast.errors import UserError
from collector.venues.base import Venue
from collector.venues.binance_spot import BinanceSpot
from collector.venues.binance_usdm import BinanceUsdm

VENUES: dict[str, type[Venue]] = {v.name: v for v in (BinanceSpot, BinanceUsdm)}


def _register_optional() -> None:
    # Venues whose modules are present; the table stays one source of truth.
    import importlib

    for module_name, class_name in (("coinbase_advanced", "CoinbaseAdvanced"),
                                    ("coinbase_exchange", "CoinbaseExchange"),
                                    ("kraken", "Kraken")):
        try:
            module = importlib.import_module(f"collector.venues.{module_name}")
        except ModuleNotFoundError:
            continue
        cls = getattr(module, class_name)
        VENUES[cls.name] = cls


_register_optional()


def venue_class(name: str) -> type[Venue]:
    try:
        return VENUES[name]
    except KeyError:
        known = ", ".join(sorted(VENUES))
        raise UserError(f"Unknown venue '{name}'; known venues are: {known}.") from None


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


__all__ = ["VENUES", "Venue", "detect_venue", "venue_class"]
