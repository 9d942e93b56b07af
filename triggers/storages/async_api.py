"""The async side of every storage: awaitable reads, and how an operation commits from a loop.

By default reads run the sync path in a worker thread
(``sync_to_async(thread_sensitive=False)``), and so do the manager's
async operations, so any backend has the async API and the loop never
waits on it. A backend that can talk to its store from the loop says so
with :meth:`AsyncStorage.commits_on_loop` and implements
:meth:`AsyncStorage.acommit` (the cache backend on Redis does).
"""

from __future__ import annotations

import asyncio
import weakref
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, TypeVar

from asgiref.sync import sync_to_async

if TYPE_CHECKING:
    from ..types import TaskConfig, TaskInstance

__all__ = ["AsyncStorage"]

T = TypeVar("T")


class AsyncStorage:
    """Async twins of the storage's queries (mixed into :class:`~triggers.storages.base.BaseTriggerStorage`)."""

    def async_turn(self) -> asyncio.Lock:
        """The running loop's lock on this object: its coroutines take turns
        with its loaded state (threads do, with ``object_mutex()``)."""
        loop = asyncio.get_running_loop()
        turns: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, asyncio.Lock]
        turns = self.__dict__.setdefault("_triggers_async_turns", weakref.WeakKeyDictionary())
        turn = turns.get(loop)
        if turn is None:
            turn = turns[loop] = asyncio.Lock()
        return turn

    def commits_on_loop(self) -> bool:
        """Whether :meth:`acommit` talks to the store from the event loop
        (else an async operation runs its sync twin in a worker thread)."""
        return False

    async def acommit(self, block: Callable[[], T], start_try: Callable[[], None]) -> T:
        """Run ``block`` as one committed operation (as ``attempts()`` does), on
        the loop, calling ``start_try`` before each try; what the committed try
        returned. Called with :meth:`async_turn` held, only where
        :meth:`commits_on_loop` is true (a backend that says so implements it)."""
        raise NotImplementedError(f"{type(self).__name__} does not commit on the event loop")

    async def _aquery(self, query: Callable[[], T]) -> T:
        """``query`` (a sync read of this storage) without blocking the loop."""
        async with self.async_turn():
            return await self.aread(query)

    async def aread(self, query: Callable[[], T]) -> T:
        """Run ``query``, a read of this storage, for :meth:`_aquery` (the turn held).
        By default in a worker thread."""
        return await sync_to_async(query, thread_sensitive=False)()

    async def aget_unresolved_instances(self) -> list[TaskInstance]:
        """Async ``get_unresolved_instances()``."""
        storage: Any = self  # the BaseTriggerStorage this is mixed into
        return await self._aquery(storage.get_unresolved_instances)

    async def aget_unresolved_tasks(self) -> list[TaskConfig]:
        """Async ``get_unresolved_tasks()``."""
        storage: Any = self  # the BaseTriggerStorage this is mixed into
        return await self._aquery(storage.get_unresolved_tasks)

    async def aget_instances_with_unresolved_logs(self) -> list[TaskInstance]:
        """Async ``get_instances_with_unresolved_logs()``."""
        storage: Any = self  # the BaseTriggerStorage this is mixed into
        return await self._aquery(storage.get_instances_with_unresolved_logs)

    async def aget_instance(self, instance_or_name: TaskInstance | str) -> TaskInstance:
        """Async ``get_instance()``."""
        storage: Any = self  # the BaseTriggerStorage this is mixed into
        return await self._aquery(lambda: storage.get_instance(instance_or_name))

    async def ainstances(self) -> list[TaskInstance]:
        """Every instance of the session (async ``list(iter_instances())``)."""
        storage: Any = self  # the BaseTriggerStorage this is mixed into
        return await self._aquery(lambda: list(storage.iter_instances()))
