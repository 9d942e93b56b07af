"""A lock driver for a new kind of cache: one module and one registration.

``tests/sqlite_cache.py`` is a small cache of the kind an application might
bring (its ``add`` is not atomic); ``tests/sqlite_lock_driver.py`` is the
driver written for it. Registered, it serves every lock on that cache,
across real processes, and a session on that cache works end to end.
"""

import multiprocessing

import pytest
from django.core.cache import caches
from django.core.exceptions import ImproperlyConfigured

from tests.sqlite_cache import SQLiteFileCache
from tests.sqlite_lock_driver import SQLiteLockDriver
from triggers import CacheStorageBackend, TriggerManager
from triggers.locking import (
    LockAcquisitionFailed,
    LockDriver,
    acquire_lock,
    lock_driver,
    register_lock_driver,
    unregister_lock_driver,
)
from triggers.locking.drivers.add import AddLockDriver
from triggers.task import task

FORK = multiprocessing.get_context("fork")
PROCESSES = 4
INCREMENTS = 50
DOUBLE = "tests.test_lock_driver_registration.double"


@task(DOUBLE)
def double(context):
    kwargs = next(iter(context.trigger_kwargs.values()))
    return {"n": kwargs["n"] * 2}


@pytest.fixture
def sqlite_cache(tmp_path):
    return SQLiteFileCache(str(tmp_path / "cache.sqlite3"))


@pytest.fixture
def registered():
    register_lock_driver(SQLiteFileCache, SQLiteLockDriver)
    yield
    unregister_lock_driver(SQLiteFileCache)


def _increment(cache, key, rounds):
    for _ in range(rounds):
        with acquire_lock(f"lock:{key}", cache=cache, ttl=30, block=60):
            cache.set(key, cache.get(key, 0) + 1)


def test_without_a_registration_the_cache_gets_the_add_driver(sqlite_cache):
    assert type(lock_driver(sqlite_cache)) is AddLockDriver


def test_a_registered_driver_serves_the_cache_and_its_subclasses(tmp_path, registered):
    class Subclass(SQLiteFileCache):
        pass

    assert type(lock_driver(SQLiteFileCache(str(tmp_path / "a.sqlite3")))) is SQLiteLockDriver
    assert type(lock_driver(Subclass(str(tmp_path / "b.sqlite3")))) is SQLiteLockDriver


def test_registered_driver_excludes_real_processes(sqlite_cache, registered, uid):
    children = [
        FORK.Process(target=_increment, args=(sqlite_cache, uid, INCREMENTS))
        for _ in range(PROCESSES)
    ]
    for child in children:
        child.start()
    for child in children:
        child.join(120)
    assert [child.exitcode for child in children] == [0] * PROCESSES
    assert sqlite_cache.get(uid) == PROCESSES * INCREMENTS


def test_a_session_on_the_new_cache_works_with_the_manager(tmp_path, settings, registered, uid):
    # As an application configures it: an alias in CACHES (tasks rebuild the storage by it).
    settings.CACHES = {
        **settings.CACHES,
        "sqlitefile": {
            "BACKEND": "tests.sqlite_cache.SQLiteFileCache",
            "LOCATION": str(tmp_path / "sessions.sqlite3"),
        },
    }
    sqlite_cache = caches["sqlitefile"]
    manager = TriggerManager(CacheStorageBackend(uid, cache="sqlitefile"))
    manager.update_configuration(
        {
            "t_double": {"after": ["start"], "run": DOUBLE, "using": "sync"},
            "t_again": {"after": ["t_double"], "run": DOUBLE, "using": "sync"},
        }
    )
    manager.fire("start", {"n": 3})
    stored = CacheStorageBackend(uid, cache="sqlitefile")
    assert type(lock_driver(sqlite_cache)) is SQLiteLockDriver
    assert {i.name: i.status for i in stored.iter_instances()} == {
        "t_double#0": "finished",
        "t_again#0": "finished",
    }
    assert stored["t_double#0"].metadata["result"] == {"n": 6}
    assert stored["t_again#0"].metadata["result"] == {"n": 12}
    # The session's lock is the registered driver's: while one holds it, none else can.
    with acquire_lock(stored.keys.lock, cache=sqlite_cache, block=False):
        with pytest.raises(LockAcquisitionFailed):
            with stored.acquire_lock(block=False):
                pass


def test_the_setting_names_drivers_too(tmp_path, settings):
    settings.TRIGGERS_LOCK_DRIVERS = {
        "tests.sqlite_cache.SQLiteFileCache": "tests.sqlite_lock_driver.SQLiteLockDriver"
    }
    assert type(lock_driver(SQLiteFileCache(str(tmp_path / "c.sqlite3")))) is SQLiteLockDriver


def test_a_registration_wins_over_the_setting(tmp_path, settings):
    class OtherDriver(SQLiteLockDriver):
        pass

    settings.TRIGGERS_LOCK_DRIVERS = {
        "tests.sqlite_cache.SQLiteFileCache": "tests.sqlite_lock_driver.SQLiteLockDriver"
    }
    register_lock_driver(SQLiteFileCache, OtherDriver)
    try:
        assert type(lock_driver(SQLiteFileCache(str(tmp_path / "d.sqlite3")))) is OtherDriver
    finally:
        unregister_lock_driver(SQLiteFileCache)


@pytest.mark.parametrize(
    "setting",
    [
        {"tests.sqlite_cache.NoSuchCache": "tests.sqlite_lock_driver.SQLiteLockDriver"},
        {"tests.sqlite_cache.SQLiteFileCache": "tests.sqlite_cache.SQLiteFileCache"},
        ["not", "a", "dict"],
    ],
)
def test_a_bad_setting_is_refused_naming_the_entry(tmp_path, settings, setting):
    settings.TRIGGERS_LOCK_DRIVERS = setting
    with pytest.raises(ImproperlyConfigured, match="TRIGGERS_LOCK_DRIVERS") as raised:
        lock_driver(SQLiteFileCache(str(tmp_path / "e.sqlite3")))
    if isinstance(setting, dict):
        assert next(iter(setting)) in str(raised.value)


@pytest.mark.parametrize(
    ("cache_class", "driver", "named"),
    [
        (object, SQLiteLockDriver, "object"),
        ("SQLiteFileCache", SQLiteLockDriver, "SQLiteFileCache"),
        (SQLiteFileCache, object, "object"),
        (SQLiteFileCache, SQLiteLockDriver(None), "SQLiteLockDriver object"),
    ],
)
def test_registering_something_else_is_a_type_error_naming_it(cache_class, driver, named):
    with pytest.raises(TypeError, match=named):
        register_lock_driver(cache_class, driver)
    assert type(lock_driver(SQLiteFileCache(":memory:"))) is AddLockDriver


def test_registration_as_a_decorator(tmp_path):
    @register_lock_driver(SQLiteFileCache)
    class DecoratedDriver(SQLiteLockDriver):
        pass

    try:
        assert issubclass(DecoratedDriver, LockDriver)
        assert type(lock_driver(SQLiteFileCache(str(tmp_path / "f.sqlite3")))) is DecoratedDriver
    finally:
        unregister_lock_driver(SQLiteFileCache)
