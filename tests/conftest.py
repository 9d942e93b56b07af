"""Fixtures that hand tests real caches, skipping (or failing in CI) when a service is absent."""

import os
import uuid

import pytest
from django.conf import settings
from django.core.cache import caches

from tests.storage_support import fresh, populate, stored_value
from triggers import CacheStorageBackend

pytest_plugins = ["tests.runner_fixtures"]

SERVICE_OF = {
    "redis": "redis",
    "dredis": "redis",
    "memcached": "memcached",
    "db_pg": "postgresql",
}
ALL_CACHES = ["locmem", "redis", "dredis", "memcached", "db_sqlite", "db_pg"]
SHARED_CACHES = ["redis", "dredis", "memcached", "db_sqlite", "db_pg"]
DB_CACHES = {"db_sqlite", "db_pg"}


def _address(service):
    from urllib.parse import urlparse

    if service == "redis":
        url = urlparse(settings.REDIS_URL)
        return url.hostname, url.port or 6379
    if service == "memcached":
        host, _, port = settings.MEMCACHED.partition(":")
        return host, int(port or 11211)
    if service == "mariadb":
        return settings.MARIADB_HOST, settings.MARIADB_PORT
    return settings.PG_HOST, settings.PG_PORT


def require_service(service):
    """Skip the test when ``service`` does not answer; fail instead when CI demands it."""
    from tests.settings import reachable

    if reachable(*_address(service)):
        return
    message = f"{service} is not reachable at {':'.join(map(str, _address(service)))}"
    if os.environ.get("TRIGGERS_TEST_REQUIRE_SERVICES") == "1":
        pytest.fail(message + " (TRIGGERS_TEST_REQUIRE_SERVICES=1)")
    pytest.skip(message)


def prepare_cache(request, alias):
    """Make ``alias`` usable by the running test and return it."""
    service = SERVICE_OF.get(alias)
    if service:
        require_service(service)
    if alias in DB_CACHES:
        request.getfixturevalue("transactional_db")
    return alias


@pytest.fixture
def uid():
    """A session uid no other test uses."""
    return "test-" + uuid.uuid4().hex


@pytest.fixture(params=ALL_CACHES)
def any_cache(request):
    """Each cache the storage layer supports, by alias."""
    return prepare_cache(request, request.param)


@pytest.fixture(params=SHARED_CACHES)
def shared_cache(request):
    """Each cache that several processes can share, by alias."""
    return prepare_cache(request, request.param)


@pytest.fixture(scope="module")
def plugin():
    """The test plugin's module (its entry points must be installed)."""
    try:
        import triggers_test_plugin
    except ImportError:
        message = "the test plugin is not installed: pip install ./tests/plugin_pkg"
        if os.environ.get("TRIGGERS_TEST_REQUIRE_SERVICES") == "1":
            pytest.fail(message)
        pytest.skip(message)
    return triggers_test_plugin


#: the layouts a cache session can be written in
LAYOUTS = ["split", "single", "paged"]
#: the caches the paged layout runs on (it is refused elsewhere)
PAGED_CACHES = {"redis", "dredis"}


@pytest.fixture(params=LAYOUTS)
def layout(request):
    """Each layout a cache session can be written in (paged: on Redis only)."""
    return request.param


def cache_independent(test):
    """Run ``test`` once, on LocMem in the split layout, not in each cache and layout.

    For a test that needs both ``any_cache`` and ``layout`` (``stored_session``
    does) and whose outcome no cache or layout can change: input refused
    before anything is read from or written to the cache.
    """
    test = pytest.mark.parametrize("any_cache", ["locmem"], indirect=True)(test)
    return pytest.mark.parametrize("layout", ["split"], indirect=True)(test)


def locmem_in_each_layout(test):
    """Run ``test`` on LocMem only, in both layouts, not in each cache.

    For a test of ``stored_session`` whose outcome is decided from what was
    loaded (the name index, the task table, an instance's status), past
    the reads: each layout loads its own way, but no cache can change the
    outcome once loaded. Reading and writing each cache is the conformance
    kit's (tests/test_storage_conformance.py) and the storage tests'.
    """
    return pytest.mark.parametrize("any_cache", ["locmem"], indirect=True)(test)


@pytest.fixture
def stored_session(any_cache, uid, layout):
    """A new storage object on a populated session (storage_support.populate), in each cache and layout.

    The witness is stored and, in the split layout, every instance record is
    in its own key. (A manager of a new session is ``manager_session``, in
    tests.runner_fixtures.)
    """
    store = populate(CacheStorageBackend(uid, cache=any_cache, layout=layout))
    if layout != "single":
        for name in store.instances:
            assert stored_value(any_cache, store.record_key(name)) is not None, name
    assert caches[any_cache].get(store.witness_key) is not None
    return fresh(store)


@pytest.fixture(params=["locmem", "redis"])
def manager_cache(request):
    """The caches the manager's rules are proven on."""
    return prepare_cache(request, request.param)


def _paged_off_redis(item):
    """Whether ``item`` would run the paged layout on a cache other than Redis."""
    params = getattr(getattr(item, "callspec", None), "params", {})
    values = [value for value in params.values() if isinstance(value, str)]
    return "paged" in values and not PAGED_CACHES.intersection(values)


def pytest_collection_modifyitems(config, items):
    # The paged layout is refused off Redis (tests/test_paged_layout.py checks how).
    deselected = [item for item in items if _paged_off_redis(item)]
    if deselected:
        config.hook.pytest_deselected(items=deselected)
        items[:] = [item for item in items if not _paged_off_redis(item)]
    # Tests on a database cache need committed tables visible to other
    # processes, in both databases.
    databases = ["default", "pg"] if "pg" in settings.DATABASES else ["default"]
    for item in items:
        params = getattr(getattr(item, "callspec", None), "params", {})
        if any(isinstance(value, str) and value in DB_CACHES for value in params.values()) or item.get_closest_marker("db_cache"):
            item.add_marker(pytest.mark.django_db(transaction=True, databases=databases))


def pytest_configure(config):
    config.addinivalue_line("markers", "db_cache: the test uses a database cache directly")
