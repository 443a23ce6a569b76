"""The bounded queue between the receivers and the one processor of the daemon."""

from __future__ import annotations

import asyncio
import math
from collections import deque
from typing import Any

BATCH = 512  # records processed per wake-up before yielding to the receivers
LINGER_S = 0.05  # how long the processor lets records gather once one is waiting


class RecordQueue:
    """The bounded queue between the receivers and the one processor.

    At real speed messages arrive one at a time, a few hundred a second, and waking
    the processor for each costs more than processing it (a future, a task switch, a
    loop iteration with cold caches). So the processor wakes on the first record, then
    lets records gather for `linger_s` (or until `batch` are waiting) and takes them
    all at once: tens of wake-ups a second instead of one per message. Receive times
    are stamped by the receivers before queueing, so lingering changes no data; it
    delays processing by at most `linger_s`, and the flusher processes whatever
    lingers before it writes (`take_nowait`), so a crash loses no more than before.

    A full queue refuses a record; the receiver then waits for room (`put`), which is
    the counted backpressure. Nothing is dropped and the queue never exceeds capacity.
    """

    def __init__(self, capacity: int, batch: int = BATCH, linger_s: float = LINGER_S) -> None:
        self.capacity, self.batch, self.linger_s = capacity, batch, linger_s
        self.items: deque[Any] = deque()
        self._wake_at = math.inf  # queue length that wakes the processor while it waits
        self._processor: asyncio.Future[None] | None = None
        self._waiting_for_room: deque[asyncio.Future[None]] = deque()

    def qsize(self) -> int:
        return len(self.items)

    def put_nowait(self, item: Any) -> bool:
        """Append unless full; False means the caller must wait (`put`)."""
        items = self.items
        if len(items) >= self.capacity:
            return False
        items.append(item)
        if len(items) >= self._wake_at or item is None:  # None: stop, no lingering
            self._wake_processor()
        return True

    async def put(self, item: Any) -> None:
        """Append, waiting for the processor to make room while the queue is full."""
        while not self.put_nowait(item):
            room = asyncio.get_running_loop().create_future()
            self._waiting_for_room.append(room)
            try:
                await room
            except asyncio.CancelledError:
                if not room.cancelled():  # woken, then cancelled: pass the room on
                    self._make_room(1)
                raise

    def put_back(self, items: list[Any]) -> None:
        """Return records taken but not processed to the front, in their order.

        They were counted out of the queue when taken (receivers may have filled the
        room since), so the queue may briefly hold up to one batch above capacity.
        """
        self.items.extendleft(reversed(items))

    def take_nowait(self) -> list[Any]:
        """Everything waiting, in arrival order, without waiting."""
        items = self.items
        batch = list(items)
        items.clear()
        self._make_room(len(batch))
        return batch

    async def take(self) -> list[Any]:
        """Up to `batch` items in arrival order: wait for one, then linger for more."""
        items = self.items
        if not items:
            await self._sleep(1, None)
        # (the flusher may have taken everything meanwhile; None asks to stop at once)
        if items and len(items) < self.batch and self.linger_s > 0 and items[-1] is not None:
            await self._sleep(self.batch, self.linger_s)
        batch = [items.popleft() for _ in range(min(self.batch, len(items)))]
        self._make_room(len(batch))
        return batch

    async def _sleep(self, wake_at: int, timeout: float | None) -> None:
        loop = asyncio.get_running_loop()
        self._processor = waiter = loop.create_future()
        self._wake_at = wake_at
        timer = None if timeout is None else loop.call_later(timeout, self._wake_processor)
        try:
            await waiter
        finally:
            self._wake_at = math.inf
            self._processor = None
            if timer is not None:
                timer.cancel()

    def _wake_processor(self) -> None:
        processor = self._processor
        if processor is not None and not processor.done():
            processor.set_result(None)

    def _make_room(self, room: int) -> None:
        waiting = self._waiting_for_room
        while waiting and room:
            receiver = waiting.popleft()
            if not receiver.done():  # cancelled ones stay queued until here
                receiver.set_result(None)
                room -= 1
