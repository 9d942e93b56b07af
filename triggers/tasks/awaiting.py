"""Running a task body written as ``async def`` where tasks run: a runner's thread, a Celery worker.

A body that returns an awaitable (an ``async def _run``, or an ``async def``
function given to ``@task``) is run to completion here, on an event loop of
its own, with the same context as a sync body; what it raises is what the
run records, as for a sync body.
"""

from __future__ import annotations

import asyncio
import contextvars
import threading
from collections.abc import Awaitable
from typing import Any

__all__ = ["run_awaitable"]


async def _await(awaitable: Awaitable[Any]) -> Any:
    return await awaitable


def run_awaitable(awaitable: Awaitable[Any]) -> Any:
    """What ``awaitable`` returns, run on a new event loop.

    A runner's thread has no loop running, and one is made for the body.
    Where a loop runs already (a sync ``fire()`` called from a coroutine,
    with the ``sync`` runner), the body gets a thread and a loop of its own:
    the calling thread waits for it, as it would for a sync body.
    """
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return asyncio.run(_await(awaitable))
    outcome: dict[str, Any] = {}
    context = contextvars.copy_context()

    def run() -> None:
        try:
            outcome["result"] = context.run(asyncio.run, _await(awaitable))
        except BaseException as exc:  # handed to the calling thread as is
            outcome["error"] = exc

    thread = threading.Thread(target=run, name="triggers-async-body")
    thread.start()
    thread.join()
    if "error" in outcome:
        raise outcome["error"]
    return outcome["result"]
