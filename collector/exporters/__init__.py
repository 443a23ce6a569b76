"""Exporters: bookcast's captures in other tools' formats (`hftbacktest`)."""

from bookcast.lazy import lazy_exports

__getattr__, __all__ = lazy_exports(__name__, {
    "export_hftbacktest": "collector.exporters.hftbacktest",
})
