"""Importers: other tools' history files -> the same snapshots and trades datasets as replay.

Each format is a module (`tardis`, `binance`); they share the streaming CSV reader
(`csvfile`), the feed that drives the collector's own Pipeline (`feed`) and the staged,
all-or-nothing write into the data root (`session`).
"""

from bookcast.lazy import lazy_exports

__getattr__, __all__ = lazy_exports(__name__, {
    "import_tardis": "collector.importers.tardis",
    "import_binance": "collector.importers.binance",
    "ImportSummary": "collector.importers.tardis",
    "TimeWindow": "collector.importers.feed",
})
