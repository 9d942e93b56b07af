"""The manager's async entry points, for ASGI views and asyncio workers.

Each one runs the very operation its sync twin runs (:mod:`.manager_ops`):
same checks, errors, signals and guarantees. Where the storage can commit
on the event loop (:meth:`~triggers.storages.async_api.AsyncStorage.commits_on_loop`:
the cache backend on Redis) the commit is awaited there, and a wait for the
session lock is an ``asyncio.sleep``; elsewhere the whole sync operation runs
in a worker thread. Either way the loop is never blocked while a lock is waited
for. Handing ready instances to their runners, which may run a task body
right there (the ``sync`` runner), happens in a worker thread too.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from asgiref.sync import sync_to_async

from .manager_ops import ManagerOperations, Operation
from .types import TaskInstance

__all__ = ["AsyncOperations"]


class AsyncOperations(ManagerOperations):
    """``afire`` and the other async twins (mixed into :class:`~triggers.manager.TriggerManager`)."""

    async def afire(
        self, trigger_name: str, trigger_kwargs: Mapping[str, Any] | None = None
    ) -> list[TaskInstance]:
        """Async :meth:`fire`: the instances the firing made ready (now scheduled)."""
        ready: list[TaskInstance] = await self._arun(self._fire_op(trigger_name, trigger_kwargs))
        return ready

    async def aupdate_configuration(self, config: Mapping[str, Any]) -> None:
        """Async :meth:`update_configuration`."""
        await self._arun(self._configure_op(config))

    async def aupdate_instance_metadata(
        self, instance_or_name: TaskInstance | str, metadata: Mapping[str, Any]
    ) -> TaskInstance:
        """Async :meth:`update_instance_metadata`."""
        instance: TaskInstance = await self._arun(self._metadata_op(instance_or_name, metadata))
        return instance

    async def areplay_failed_instance(
        self,
        instance_or_name: TaskInstance | str,
        replacement_kwargs: Mapping[str, Any] | None = None,
        *,
        metadata: Mapping[str, Any] | None = None,
    ) -> TaskInstance:
        """Async :meth:`replay_failed_instance`: the clone, scheduled."""
        op = self._replay_op(instance_or_name, replacement_kwargs, metadata)
        clone: TaskInstance = await self._arun(op)
        return clone

    async def askip_failed_instance(
        self,
        instance_or_name: TaskInstance | str,
        cascade: bool = False,
        result: Mapping[str, Any] | None = None,
    ) -> TaskInstance:
        """Async :meth:`skip_failed_instance`."""
        instance: TaskInstance = await self._arun(self._skip_op(instance_or_name, cascade, result))
        return instance

    async def _arun(self, operation: Operation) -> Any:
        """Commit ``operation`` without blocking the loop, signal, then finish it.

        The coroutines of one loop that share a storage object take turns
        (its loaded state is one), as threads do with ``object_mutex()``.
        """
        storage = self.storage
        async with storage.async_turn():
            if not storage.commits_on_loop():
                return await sync_to_async(self._run, thread_sensitive=False)(operation)
            storage.expect(**operation.expect)
            result = await storage.acommit(operation.block, self._events.start_try)
            self._events.send(self, new_session=operation.new_session(result))
        if operation.dispatches(result):
            return await sync_to_async(operation.finish, thread_sensitive=False)(result)
        return operation.finish(result)
