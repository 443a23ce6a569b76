"""Freed memory back to the system at once, so a long process's resident set is what it
holds, not the largest arrays it ever freed."""

from __future__ import annotations

import ctypes
import sys
from typing import Any

_M_MMAP_THRESHOLD = -3  # glibc's mallopt parameter (malloc.h)


def map_large_allocations(threshold_bytes: int = 1 << 20) -> None:
    """Serve every allocation of `threshold_bytes` or more by a mapping of its own,
    returned to the system when freed (glibc).

    By default glibc raises this threshold to the largest block freed so far, up to
    32 MiB: after the first row-sized NumPy temporary is freed, the next ones come from the
    heap, and the heap keeps their pages resident after they are freed, so each stage of a
    backtest adds the previous stages' temporaries to the peak. Setting the threshold fixes
    it. Elsewhere (not Linux, or a libc without mallopt) this does nothing.
    """
    mallopt = _libc("mallopt")
    if mallopt is not None:
        mallopt.argtypes = (ctypes.c_int, ctypes.c_int)
        mallopt(_M_MMAP_THRESHOLD, int(threshold_bytes))


def _libc(name: str) -> Any:  # the C function, or None without glibc
    if not sys.platform.startswith("linux"):
        return None
    try:
        return getattr(ctypes.CDLL(None), name)
    except (OSError, AttributeError):  # no C library to ask
        return None
