"""Package exports that load on first use (PEP 562), so start-up imports only what a
command needs: `bookcast --help` does not compile the simulator or import vectorbt."""

from __future__ import annotations

import importlib
from collections.abc import Callable
from typing import Any


def lazy_exports(package: str, exports: dict[str, str]) -> tuple[Callable[[str], Any], list[str]]:
    """A module `__getattr__` resolving each exported name from its module, and `__all__`."""

    def resolve(name: str) -> Any:
        if name not in exports:
            raise AttributeError(f"module {package!r} has no attribute {name!r}")
        return getattr(importlib.import_module(exports[name]), name)

    return resolve, sorted(exports)
