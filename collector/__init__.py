"""collector: exchange messages -> exact L2 books -> snapshot and trade Parquet.

Live collection and offline replay share everything after the socket:
venue parser -> sync rule -> OrderBook -> Sampler -> Parquet writers.
"""

from collector.book import OrderBook, parse_units
from collector.capture import CaptureRecord, CaptureWriter, iter_capture, merge_captures

__all__ = ["CaptureRecord", "CaptureWriter", "OrderBook", "iter_capture", "merge_captures",
           "parse_units"]
