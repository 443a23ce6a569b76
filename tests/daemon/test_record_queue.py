"""The daemon's record queue: bounded, order-keeping, batching, and fair to a cancelled put."""

from __future__ import annotations

import asyncio
import time

from collector.daemon.record_queue import RecordQueue


def run(coro):
    return asyncio.run(coro)


def test_records_come_out_in_order_in_batches_and_the_bound_holds():
    async def scenario() -> list[list[int]]:
        queue = RecordQueue(capacity=5, batch=3, linger_s=0.01)
        assert all(queue.put_nowait(i) for i in range(5))
        assert not queue.put_nowait(5)  # full: the caller must wait
        assert queue.qsize() == 5
        return [await queue.take(), await queue.take()]

    assert run(scenario()) == [[0, 1, 2], [3, 4]]


def test_a_full_queue_makes_the_receiver_wait_until_the_processor_makes_room():
    async def scenario() -> tuple[bool, list[int]]:
        queue = RecordQueue(capacity=2, batch=10, linger_s=0.0)
        queue.put_nowait(0)
        queue.put_nowait(1)
        blocked = asyncio.create_task(queue.put(2))
        await asyncio.sleep(0.01)
        waited = not blocked.done()
        first = await queue.take()
        await asyncio.wait_for(blocked, 1.0)
        return waited, first + await queue.take()

    waited, items = run(scenario())
    assert waited and items == [0, 1, 2]


def test_the_processor_lingers_for_more_records_but_not_longer_than_linger():
    async def scenario() -> tuple[list[int], float]:
        queue = RecordQueue(capacity=100, batch=50, linger_s=0.05)
        loop = asyncio.get_running_loop()
        loop.call_later(0.01, queue.put_nowait, 1)
        loop.call_later(0.02, queue.put_nowait, 2)
        started = time.monotonic()
        queue.put_nowait(0)
        batch = await queue.take()
        return batch, time.monotonic() - started

    batch, took = run(scenario())
    assert batch == [0, 1, 2]  # gathered while lingering
    assert 0.04 <= took < 0.5


def test_stop_is_taken_at_once_without_lingering():
    async def scenario() -> tuple[list, float]:
        queue = RecordQueue(capacity=10, batch=50, linger_s=5.0)
        queue.put_nowait("a")
        queue.put_nowait(None)  # the stop marker
        started = time.monotonic()
        return await queue.take(), time.monotonic() - started

    batch, took = run(scenario())
    assert batch == ["a", None] and took < 1.0


def test_a_cancelled_waiting_receiver_passes_its_room_on():
    async def scenario() -> list[int]:
        queue = RecordQueue(capacity=1, batch=10, linger_s=0.0)
        queue.put_nowait(0)
        first = asyncio.create_task(queue.put(1))
        second = asyncio.create_task(queue.put(2))
        await asyncio.sleep(0.01)
        taken = await queue.take()  # makes room for one waiter
        first.cancel()  # woken, then cancelled: the room must go to the other one
        await asyncio.wait_for(second, 1.0)
        return taken + await queue.take()

    assert run(scenario()) == [0, 2]


def test_records_handed_back_come_out_first_and_in_order():
    async def scenario() -> list[int]:
        queue = RecordQueue(capacity=10, batch=4, linger_s=0.0)
        for i in range(6):
            queue.put_nowait(i)
        batch = await queue.take()  # 0..3
        queue.put_nowait(6)
        queue.put_back(batch[2:])  # 2 and 3 were not processed
        return batch[:2] + queue.take_nowait()

    assert run(scenario()) == [0, 1, 2, 3, 4, 5, 6]
