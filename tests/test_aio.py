"""A reconnect loop stops when cancelled, even when a TaskGroup hands it its children's errors
instead of the cancellation (Python 3.11)."""

from __future__ import annotations

import asyncio

from borderwatch.aio import raise_if_cancelling


async def _child_that_fails_when_cancelled() -> None:
    try:
        await asyncio.sleep(60)
    except asyncio.CancelledError:
        raise ConnectionError("connection dropped while stopping") from None


async def _reconnect_loop(rounds: list[int]) -> None:
    while True:
        rounds.append(1)
        try:
            async with asyncio.TaskGroup() as tasks:
                tasks.create_task(_child_that_fails_when_cancelled())
                await asyncio.sleep(60)
        except* ConnectionError:
            raise_if_cancelling()
        await asyncio.sleep(0)


async def test_a_reconnect_loop_ends_when_cancelled_despite_its_children_s_errors() -> None:
    rounds: list[int] = []
    task = asyncio.create_task(_reconnect_loop(rounds))
    await asyncio.sleep(0.05)
    task.cancel()
    done, _ = await asyncio.wait({task}, timeout=5.0)
    assert task in done, f"still running after {len(rounds)} connections"
    assert task.cancelled()
    assert len(rounds) == 1  # it did not reconnect


async def test_outside_a_cancellation_it_does_nothing() -> None:
    raise_if_cancelling()  # a running task, not cancelled
    assert asyncio.current_task() is not None
