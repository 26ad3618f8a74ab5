"""asyncio helpers shared by the drivers and the services."""

from __future__ import annotations

import asyncio

__all__ = ["raise_if_cancelling"]


def raise_if_cancelling() -> None:
    """Raise :class:`asyncio.CancelledError` when the current task has been asked to stop.

    On Python 3.11, a task cancelled while the :class:`asyncio.TaskGroup` it waits on has a
    child failing (a connection dropping as the service stops) gets the children's errors
    instead of its cancellation. A reconnect loop that handles those errors would then
    reconnect and run on, and the stop would wait for ever. Such a loop calls this in its
    error handlers; the cancellation request is still counted by :meth:`asyncio.Task.cancelling`.
    """
    task = asyncio.current_task()
    if task is not None and task.cancelling():
        raise asyncio.CancelledError
