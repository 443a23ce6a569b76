"""The collector daemon's health, read from its Prometheus endpoint (collector/daemon/metrics.py).

No Streamlit here: the command imports the address settings without starting a runtime.
"""

from __future__ import annotations

import os
import urllib.error
import urllib.request
from dataclasses import dataclass

import polars as pl

METRICS_URL_ENV = "BOOKCAST_METRICS_URL"
DEFAULT_METRICS_URL = "http://127.0.0.1:9108/metrics"


def metrics_url() -> str:
    return os.environ.get(METRICS_URL_ENV, DEFAULT_METRICS_URL)


@dataclass
class CollectorHealth:
    url: str
    samples: pl.DataFrame  # name, venue, symbol, conn, value
    error: str | None = None

    @property
    def reachable(self) -> bool:
        return self.error is None


def collector_health(url: str, timeout_s: float = 1.0) -> CollectorHealth:
    """Scrape the collector daemon's Prometheus endpoint; an error says why it could not."""
    from prometheus_client.parser import text_string_to_metric_families

    empty = pl.DataFrame(schema={"name": pl.Utf8, "venue": pl.Utf8, "symbol": pl.Utf8,
                                 "conn": pl.Utf8, "value": pl.Float64})
    try:
        with urllib.request.urlopen(url, timeout=timeout_s) as reply:
            text = reply.read().decode("utf-8", errors="replace")
    except (urllib.error.URLError, OSError, ValueError) as exc:
        return CollectorHealth(url, empty, f"{type(exc).__name__}: {exc}")
    rows = []
    try:
        for family in text_string_to_metric_families(text):
            for sample in family.samples:
                if not sample.name.startswith("bookcast_") or sample.name.endswith(
                        ("_bucket", "_created")):
                    continue
                rows.append({"name": sample.name.removesuffix("_total"),
                             "venue": sample.labels.get("venue"),
                             "symbol": sample.labels.get("symbol"),
                             "conn": sample.labels.get("conn"), "value": float(sample.value)})
    except ValueError as exc:
        return CollectorHealth(url, empty, f"not Prometheus text: {exc}")
    return CollectorHealth(url, pl.DataFrame(rows, schema=empty.schema) if rows else empty)


def health_by_symbol(samples: pl.DataFrame) -> pl.DataFrame:
    """One row per (venue, symbol), one column per per-symbol metric."""
    per_symbol = samples.filter(pl.col("symbol").is_not_null())
    if per_symbol.is_empty():
        return per_symbol
    return (per_symbol.pivot(on="name", index=["venue", "symbol"], values="value",
                             aggregate_function="sum")
            .sort("venue", "symbol"))
