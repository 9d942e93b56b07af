"""Task bodies written as ``async def``, run by the sync and threading runners.

The body gets the same context as a sync one; what it returns is its
result, what it raises is recorded; the sync runner runs it even when the
fire came from a coroutine (``afire``) or from sync code inside a running loop.
"""

from __future__ import annotations

import asyncio
import threading

import pytest

from triggers import CacheStorageBackend, TriggerManager
from triggers.task import TaskContext, TriggerTask, task
from triggers.tasks.runners import ThreadingTaskRunner


@task("tests_async.total")
async def async_total(context: TaskContext) -> dict:
    await asyncio.sleep(0)
    noted = await context.manager.aupdate_instance_metadata(context.instance_name, {"noted": True})
    return {
        "total": sum(kwargs.get("n", 0) for kwargs in context.trigger_kwargs.values()),
        "instance": context.instance_name,
        "noted": noted.metadata["noted"],
        "thread": threading.current_thread().name,
    }


class AsyncSkips(TriggerTask):
    name = "tests_async.skips"

    async def _run(self, context: TaskContext) -> None:
        await asyncio.sleep(0)
        self.skip({"why": "async"})


@task("tests_async.fails")
async def async_fails(context: TaskContext) -> dict:
    await asyncio.sleep(0)
    raise LookupError(f"nothing for {context.instance_name}")


CONFIG = {
    "t_total": {"after": ["go"], "run": "tests_async.total"},
    "t_skips": {"after": ["go"], "run": "tests_async.skips"},
    "t_fails": {"after": ["go"], "run": "tests_async.fails"},
}


@pytest.fixture(params=["locmem", "redis"])
def manager(request, uid, settings, no_stray_threads):
    from tests.conftest import prepare_cache

    alias = prepare_cache(request, request.param)
    settings.TRIGGERS_CACHE_ALIAS = alias
    manager = TriggerManager(CacheStorageBackend(uid, cache=alias))
    manager.update_configuration(CONFIG)
    return manager


def outcomes(manager: TriggerManager) -> dict:
    stored = CacheStorageBackend(manager.storage.uid, cache=manager.storage.cache)
    return {i.name: (i.status, i.metadata) for i in stored}


def check(manager: TriggerManager) -> None:
    found = outcomes(manager)
    status, metadata = found["t_total#0"]
    assert status == "finished"
    assert metadata["result"]["total"] == 5 and metadata["result"]["instance"] == "t_total#0"
    assert metadata["noted"] is True and metadata["result"]["noted"] is True
    assert found["t_skips#0"][0] == "skipped" and found["t_skips#0"][1]["why"] == "async"
    status, metadata = found["t_fails#0"]
    assert status == "failed" and metadata["exceptionType"] == "builtins.LookupError"
    assert "nothing for t_fails#0" in metadata["exceptionInfo"]


def fire(manager: TriggerManager) -> None:
    try:
        manager.fire("go", {"n": 5})
    except LookupError:
        pass  # the sync runner re-raises what the body raised, once recorded


@pytest.mark.parametrize("runner", ["sync", "threading"])
def test_async_bodies_run_under_the_runner(manager, settings, runner):
    settings.TRIGGERS_DEFAULT_RUNNER = runner
    fire(manager)
    ThreadingTaskRunner.join_all(timeout=60)
    check(manager)


def test_async_bodies_run_when_fired_from_a_coroutine(manager, settings):
    settings.TRIGGERS_DEFAULT_RUNNER = "sync"

    async def main():
        try:
            await manager.afire("go", {"n": 5})
        except LookupError:
            pass

    asyncio.run(main())
    check(manager)


def test_async_bodies_run_from_sync_code_inside_a_loop(manager, settings):
    """A sync fire called from a coroutine (it blocks that loop): the body gets a loop of its own."""
    settings.TRIGGERS_DEFAULT_RUNNER = "sync"

    async def main():
        fire(manager)

    asyncio.run(main())
    check(manager)
    assert outcomes(manager)["t_total#0"][1]["result"]["thread"] == "triggers-async-body"
