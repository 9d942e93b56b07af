"""Process-wide state: every piece has an owner that resets it, all reachable from
triggers.process_state, and a setting change resets what was derived from it."""

from __future__ import annotations

import asyncio
import warnings

import pytest
from django.conf import settings as django_settings
from django.core.cache import caches
from django.core.exceptions import ImproperlyConfigured
from django.test import override_settings

import triggers.forking as forking
import triggers.tasks.celery_tasks as celery_tasks
import triggers.tasks.classes as task_classes
from tests.conftest import require_service
from tests.storage_support import fresh
from triggers import CacheStorageBackend, TriggerManager
from triggers.locking.driver_table import _drivers, lock_driver
from triggers.locking.drivers.add import AddLockDriver
from triggers.locking.drivers.locmem import LocMemLockDriver
from triggers.locking.drivers.memcached_client import MemcachedServers, _item_size_max
from triggers.locking.drivers.redis_legacy import legacy_driver
from triggers.process_state import owners, register_state, reset_for_setting, reset_process_state
from triggers.registry import task_runners
from triggers.storages.cache.committed import committed_heads
from triggers.storages.cache.tables import first_configurations, task_tables
from triggers.task import TriggerTask, UnknownTaskError, get_task
from triggers.tasks.payload import _warned
from triggers.tasks.runners import SynchronousTaskRunner
from triggers.types import TaskInstance

OWNERS = {
    "committed heads",
    "task tables",
    "first configurations",
    "lock drivers",
    "legacy lock drivers",
    "memcached item sizes",
    "fork-watched caches",
    "warned manager classes",
    "discovered tasks modules",
    "task fallbacks",
    "celery hooked apps",
    "database configuration sets",
    "async redis clients",
    "redis clients",
    "lock wake-ups",
}
LOCMEM_CLASS = "django.core.cache.backends.locmem.LocMemCache"
ADD_DRIVER = "triggers.locking.drivers.add.AddLockDriver"
CONFIG = {"t": {"after": ["go"], "run": "tests.add", "using": "sync"}}


def redis_session(uid: str) -> tuple[CacheStorageBackend, dict]:
    """A configured split session on Redis, committed without the lock; its task table."""
    require_service("redis")
    manager = TriggerManager(CacheStorageBackend(uid, cache="redis", layout="split"))
    manager.update_configuration(dict(CONFIG))
    storage = fresh(manager)
    storage.tasks  # noqa: B018  (reads the head and the table)
    return storage, storage._read.table


def remembered(storage: CacheStorageBackend) -> bool:
    return committed_heads.get(storage._session_identity()) is not None


def cached_table(storage: CacheStorageBackend) -> bool:
    return task_tables.get(storage._read.head["tasks_version"]) is not None


# --------------------------------------------------------------------------- the owners


def test_every_owner_is_reachable_from_one_place():
    assert set(owners()) == OWNERS
    for owner in owners().values():
        assert callable(getattr(owner.obj, "reset", None) or owner.obj.clear), owner.name
        assert owner.about, owner.name


def test_an_owner_needs_a_reset_or_a_clear():
    with pytest.raises(TypeError, match="reset\\(\\) or clear\\(\\)"):
        register_state("nothing to reset", object())
    assert "nothing to reset" not in owners()


def test_an_unknown_owner_name_is_an_error():
    with pytest.raises(KeyError):
        reset_process_state(["no such owner"])


def test_committed_heads_and_task_tables_reset(uid, settings):
    settings.TRIGGERS_CACHE_ALIAS = "redis"  # where the sync runner's task finds the session
    storage, _ = redis_session(uid)
    assert remembered(storage) and cached_table(storage)
    assert first_configurations.find(CONFIG) is not None

    assert reset_process_state(["committed heads"]) == ["committed heads"]
    assert not remembered(storage) and cached_table(storage)
    reset_process_state(["task tables", "first configurations"])
    assert not cached_table(storage)
    assert first_configurations.find(CONFIG) is None
    # A new process's start: everything read again, and the session goes on.
    manager = TriggerManager(fresh(storage))
    manager.fire("go", {"a": 1})
    assert fresh(storage)["t#0"].status == TaskInstance.STATUS_FINISHED
    assert remembered(storage)


def test_async_redis_clients_reset():
    require_service("redis")
    twin = lock_driver(caches["redis"]).asynchronous()

    async def clients():
        first = twin.client()
        assert twin.client() is first  # one per loop and settings
        reset_process_state(["async redis clients"])
        return first, twin.client()

    first, second = asyncio.run(clients())
    assert second is not first


def test_lock_drivers_reset():
    cache = caches["locmem"]
    driver = lock_driver(cache)
    assert lock_driver(cache) is driver
    reset_process_state(["lock drivers"])
    assert cache not in _drivers
    assert lock_driver(cache) is not driver


def test_legacy_lock_drivers_reset():
    require_service("redis")
    cache = caches["redis"]
    driver = legacy_driver(cache)
    assert legacy_driver(cache) is driver
    reset_process_state(["legacy lock drivers"])
    assert legacy_driver(cache) is not driver


def test_memcached_item_sizes_reset():
    require_service("memcached")
    servers = MemcachedServers(caches["memcached"])
    client, _ = servers.one("any-key")
    limit = servers.item_size_max(client)
    assert _item_size_max == {str(client.server): limit}
    reset_process_state(["memcached item sizes"])
    assert _item_size_max == {}
    assert servers.item_size_max(client) == limit  # asked again


def test_fork_watched_caches_reset():
    cache = caches["memcached"]
    forking.watch_forks(cache)
    assert cache in forking._memcached
    reset_process_state(["fork-watched caches"])
    assert cache not in forking._memcached


def test_warned_manager_classes_reset(manager_session):
    class NotRegistered(TriggerManager):
        pass

    manager = NotRegistered(manager_session.storage)
    manager.update_configuration(
        {f"t{n}": {"after": [f"go{n}"], "run": "tests.add"} for n in range(3)}
    )
    with pytest.warns(RuntimeWarning, match="NotRegistered"):
        manager.fire("go0")
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        manager.fire("go1")  # warned once
    reset_process_state(["warned manager classes"])
    assert NotRegistered not in _warned
    with pytest.warns(RuntimeWarning, match="NotRegistered"):
        manager.fire("go2")


def test_discovered_tasks_modules_reset():
    task_classes.autodiscover_tasks()
    assert "triggers.tasks" in task_classes._discovered
    reset_process_state(["discovered tasks modules"])
    assert task_classes._discovered == set()


def test_celery_hooked_apps_reset():
    class App:  # stands for a Celery app: only its identity is kept
        pass

    app = App()
    celery_tasks._hooked.add(app)
    reset_process_state(["celery hooked apps"])
    assert app not in celery_tasks._hooked


class ByPath(TriggerTask):
    abstract = True  # registered under no name

    def _run(self, context):
        return {}


def test_task_fallbacks_resolve_unregistered_names_until_reset():
    name = "tests.by-path"

    def resolver(asked):
        return ByPath if asked == name else None

    task_classes.task_fallbacks.add(resolver)
    try:
        assert get_task(name) is ByPath
        with pytest.raises(UnknownTaskError):
            get_task("tests.still-unknown")
    finally:
        reset_process_state(["task fallbacks"])
    with pytest.raises(UnknownTaskError):
        get_task(name)
    task_classes.task_fallbacks.remove(resolver)  # gone already: nothing happens


def test_a_task_fallback_must_resolve_to_a_task():
    def resolver(asked):
        return dict

    task_classes.task_fallbacks.add(resolver)
    try:
        with pytest.raises(TypeError, match="not a TriggerTask subclass"):
            get_task("tests.not-a-task")
    finally:
        task_classes.task_fallbacks.remove(resolver)


def test_reset_process_state_resets_every_owner(uid):
    storage, _ = redis_session(uid)
    lock_driver(caches["locmem"])
    assert set(reset_process_state()) == OWNERS
    assert not remembered(storage) and not cached_table(storage)
    assert len(_drivers) == 0


# --------------------------------------------------------------------------- settings


def test_changing_caches_drops_drivers_heads_and_tables(uid):
    storage, _ = redis_session(uid)
    old_cache = storage.cache
    lock_driver(caches["locmem"])
    elsewhere = {**django_settings.CACHES["redis"], "KEY_PREFIX": "elsewhere-" + uid}
    with override_settings(CACHES={**django_settings.CACHES, "redis": elsewhere}):
        assert not remembered(storage) and not cached_table(storage)
        assert first_configurations.find(CONFIG) is None
        assert len(_drivers) == 0
        # The alias names the new cache: the session is not there.
        moved = CacheStorageBackend(uid, cache="redis")
        assert moved.cache is not old_cache
        assert dict(moved.tasks) == {}
        TriggerManager(moved).update_configuration(dict(CONFIG))
        assert remembered(moved)
    # Changed back: dropped again, and the first cache still holds the session.
    assert not remembered(moved)
    assert "t" in CacheStorageBackend(uid, cache="redis").tasks


def test_changing_the_lock_drivers_setting_takes_effect_on_the_same_cache_object():
    cache = caches["locmem"]
    assert type(lock_driver(cache)) is LocMemLockDriver
    with override_settings(TRIGGERS_LOCK_DRIVERS={LOCMEM_CLASS: ADD_DRIVER}):
        assert caches["locmem"] is cache
        assert type(lock_driver(cache)) is AddLockDriver
    assert type(lock_driver(cache)) is LocMemLockDriver


def test_pytest_django_settings_changes_reset_too(uid, settings):
    storage, _ = redis_session(uid)
    settings.TRIGGERS_CACHE_LAYOUT = "single"
    assert not remembered(storage) and not cached_table(storage)


def test_installed_apps_changes_reset_task_discovery():
    task_classes.autodiscover_tasks()
    assert task_classes._discovered
    with override_settings(INSTALLED_APPS=[*django_settings.INSTALLED_APPS]):
        assert task_classes._discovered == set()


def test_settings_nothing_depends_on_reset_nothing(uid):
    storage, _ = redis_session(uid)
    with override_settings(TRIGGERS_DEFAULT_RUNNER="sync", TRIGGERS_RUNNER_ALIASES={}):
        assert remembered(storage) and cached_table(storage)
    assert reset_for_setting("TRIGGERS_DEFAULT_RUNNER") == []
    assert remembered(storage)


# --------------------------------------------------------------------------- runner aliases


def test_runner_aliases_serve_one_runner_key_with_another(uid):
    manager = TriggerManager(CacheStorageBackend(uid, cache="locmem"))
    manager.update_configuration({"t": {"after": ["go"], "run": "tests.add", "using": "elsewhere"}})
    with override_settings(TRIGGERS_RUNNER_ALIASES={"elsewhere": "sync"}):
        assert task_runners.get_class("elsewhere") is SynchronousTaskRunner
        manager.fire("go", {"a": 2})
        # Run by the sync runner, before fire() returned.
        assert fresh(manager)["t#0"].metadata["result"] == {"sum": 2}
    with pytest.raises(KeyError):
        task_runners.get_class("elsewhere")


def test_runner_aliases_must_be_a_dict_of_keys():
    with override_settings(TRIGGERS_RUNNER_ALIASES=["celery"]):
        with pytest.raises(ImproperlyConfigured, match="TRIGGERS_RUNNER_ALIASES"):
            task_runners.get_class("threading")
