"""SIGINT and SIGTERM for one-shot commands: unwind like Ctrl-C, then exit 130 or 143.

Both signals raise `Interrupted` (a KeyboardInterrupt) in the main thread, so every
`finally` and every writer's cleanup runs: files appear under their final name only when
complete, and temporary files are removed. The command line then prints one line naming
what was interrupted. Long-running services (`collect`, `serve`) install their own
handlers and stop cleanly instead.
"""

from __future__ import annotations

import signal
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from types import FrameType

_received: signal.Signals | None = None
_received_during: str | None = None
_activity: list[str] = []


class Interrupted(KeyboardInterrupt):
    """Raised by SIGINT or SIGTERM; carries which."""

    def __init__(self, sig: signal.Signals) -> None:
        super().__init__(sig.name)
        self.signal = sig


def install() -> None:
    """Route SIGINT and SIGTERM of this process to `Interrupted`."""
    global _received, _received_during
    _received, _received_during = None, None
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, _on_signal)
    sys.unraisablehook = _redeliver_interrupts


def _redeliver_interrupts(unraisable: sys.UnraisableHookArgs) -> None:
    """An `Interrupted` raised inside a C callback (Numba's compiler writing its cache
    through llvmlite) cannot unwind the callback: Python would print it as "Exception
    ignored" with a traceback and carry on as if no signal came. Deliver the signal again,
    a moment later from another thread (raised here, it would land in this hook, just as
    unraisable); its handler then runs in the main thread's ordinary code, where it
    unwinds as it should."""
    if isinstance(unraisable.exc_value, Interrupted):
        import os
        import threading

        threading.Timer(0.05, os.kill, (os.getpid(), unraisable.exc_value.signal)).start()
        return
    sys.__unraisablehook__(unraisable)


def _on_signal(signum: int, frame: FrameType | None) -> None:
    global _received, _received_during
    sig = signal.Signals(signum)
    if _received is None:
        _received, _received_during = sig, current_activity()
    raise Interrupted(sig)


@contextmanager
def shielded() -> Iterator[None]:
    """Let a shutdown finish: SIGINT and SIGTERM are ignored inside (the shutdown itself
    must be bounded, e.g. SIGKILL after a timeout), then handled as before."""
    previous = {sig: signal.signal(sig, signal.SIG_IGN) for sig in (signal.SIGINT,
                                                                   signal.SIGTERM)}
    try:
        yield
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)


def stopped_cleanly() -> None:
    """The command treated the signal as a request to stop and finished its work (a
    server shutting down): no 130/143, no "interrupted" line."""
    global _received, _received_during
    _received, _received_during = None, None


def received() -> signal.Signals | None:
    """The first signal that interrupted this process, if any."""
    return _received


def exit_status(sig: signal.Signals) -> int:
    """The shell's convention: 128 + the signal's number (130 for SIGINT, 143 for SIGTERM)."""
    return 128 + int(sig)


@contextmanager
def activity(text: str) -> Iterator[None]:
    """Say what the command is doing now, so an interrupt can name it."""
    _activity.append(text)
    try:
        yield
    finally:
        _activity.pop()


def now_doing(text: str) -> None:
    """Replace what the command says it is doing (a pipeline moving to its next step)."""
    _activity[:] = [text]


def current_activity() -> str | None:
    return _activity[-1] if _activity else None


def interrupted_activity() -> str | None:
    """What the command was doing when the first signal arrived."""
    return _received_during
