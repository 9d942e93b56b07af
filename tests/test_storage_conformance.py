"""The storage conformance kit (``triggers.testing.StorageBackendTests``).

Run on the cache backend (every cache of the suite, both layouts), on the
test plugin's ``DictStorageBackend`` (as a ``unittest.TestCase``, the way a
third party may run it), and on backends that drop a part of the session
on save, which the kit must fail.
"""

import copy
import functools
import os
import sys
import types
import unittest

import pytest
from django.test import SimpleTestCase

from tests.conftest import ALL_CACHES, LAYOUTS, prepare_cache, require_service
from tests.test_docs_snippets import python_blocks
from triggers import CacheStorageBackend
from triggers.storages.base import BaseTriggerStorage
from triggers.testing import StorageBackendTests

# --------------------------------------------------------------------------- the cache backend


class TestCacheStorageBackend(StorageBackendTests):
    """Every check, on every cache alias and layout (the processes check on shared caches)."""

    @pytest.fixture(autouse=True, params=ALL_CACHES)
    def cache_alias(self, request):
        self.alias = prepare_cache(request, request.param)
        # LocMem is per process: its lock does not reach a forked child.
        self.locks_across_processes = self.alias != "locmem"
        return self.alias

    @pytest.fixture(autouse=True, params=LAYOUTS)
    def cache_layout(self, request):
        self.layout = request.param
        return self.layout

    def make_storage(self, uid):
        return CacheStorageBackend(uid, cache=self.alias, layout=self.layout)

    def storage_factory(self):
        return functools.partial(CacheStorageBackend, cache=self.alias, layout=self.layout)


class LocMemKitTests(StorageBackendTests, SimpleTestCase):
    """The kit in a Django test case: the cache backend on LocMem, within one process."""

    def make_storage(self, uid):
        return CacheStorageBackend(uid, cache="locmem")


# --------------------------------------------------------------------------- the plugin's backend


def _plugin():
    try:
        import triggers_test_plugin
    except ImportError:
        message = "the test plugin is not installed: pip install ./tests/plugin_pkg"
        if os.environ.get("TRIGGERS_TEST_REQUIRE_SERVICES") == "1":
            raise AssertionError(message) from None
        raise unittest.SkipTest(message) from None
    return triggers_test_plugin


class DictStorageBackendTests(StorageBackendTests, unittest.TestCase):
    """The plugin's backend keeps sessions in a dict of its process: no cross-process check."""

    def setUp(self):
        self.backend = _plugin().DictStorageBackend

    def make_storage(self, uid):
        return self.backend(uid)


# --------------------------------------------------------------------------- broken backends

SESSIONS = {}


class SoundBackend(BaseTriggerStorage):
    """The guide's recipe, done right: the control for the broken ones below."""

    name = "kit-sound"

    def _load_from_backend(self):
        return copy.deepcopy(SESSIONS.get(self.uid, ({}, {}, {})))

    def _save(self):
        SESSIONS[self.uid] = copy.deepcopy(self._stored_parts())

    def _stored_parts(self):
        return self._serialize(self._configs), self._serialize(self._instances), self._metas


class LosesInstanceMetadata(SoundBackend):
    def _stored_parts(self):
        configs, instances, metas = super()._stored_parts()
        return configs, {name: {**data, "metadata": {}} for name, data in instances.items()}, metas


class LosesSessionMetadata(SoundBackend):
    def _stored_parts(self):
        configs, instances, metas = super()._stored_parts()
        return configs, instances, {"latest_kwargs": metas["latest_kwargs"]}


class LosesWithParams(SoundBackend):
    def _stored_parts(self):
        configs, instances, metas = super()._stored_parts()
        return {name: {**data, "withParams": {}} for name, data in configs.items()}, instances, metas


class LosesAbandonState(SoundBackend):
    def _stored_parts(self):
        configs, instances, metas = super()._stored_parts()
        return configs, {name: {**data, "abandonState": []} for name, data in instances.items()}, metas


class KeepsFirstWrite(SoundBackend):
    """Writes new instances, never the changes to stored ones."""

    def _stored_parts(self):
        configs, instances, metas = super()._stored_parts()
        stored = SESSIONS.get(self.uid, ({}, {}, {}))[1]
        return configs, {**instances, **stored}, metas


class Kit(StorageBackendTests):
    """The kit run by hand on one backend class (not collected: no ``Test`` prefix)."""

    def __init__(self, backend):
        self.backend = backend

    def make_storage(self, uid):
        return self.backend(uid)


BROKEN = {
    LosesInstanceMetadata: [
        "test_instances_round_trip",
        "test_instance_properties_round_trip",
        "test_unresolved_queries",
        "test_whole_session_round_trip",
        "test_manager_round_trip",
    ],
    LosesSessionMetadata: [
        "test_session_metadata_round_trip",
        "test_whole_session_round_trip",
        "test_changes_round_trip",
    ],
    LosesWithParams: [
        "test_configuration_round_trip",
        "test_update_configuration_merges_by_name",
        "test_instances_round_trip",
        "test_whole_session_round_trip",
    ],
    LosesAbandonState: ["test_instances_round_trip", "test_clone_instance", "test_whole_session_round_trip"],
    KeepsFirstWrite: ["test_changes_round_trip", "test_unresolved_queries_follow_changes", "test_manager_round_trip"],
}


@pytest.mark.parametrize("backend", list(BROKEN), ids=lambda backend: backend.__name__)
def test_kit_fails_a_backend_that_drops_a_part(backend):
    for check in BROKEN[backend]:
        getattr(Kit(SoundBackend), check)()  # the control passes
        with pytest.raises(AssertionError):
            getattr(Kit(backend), check)()


def test_kit_names_every_check_it_fails():
    """Run as a whole on a broken backend, the failures are the checks that read the part."""
    failed = []
    for check in sorted(name for name in dir(StorageBackendTests) if name.startswith("test_")):
        try:
            getattr(Kit(LosesSessionMetadata), check)()
        except AssertionError:
            failed.append(check)
        except unittest.SkipTest:
            pass
    assert failed == sorted(BROKEN[LosesSessionMetadata])


def test_kit_is_exported_and_collected_only_through_subclasses():
    import triggers.testing
    import triggers.testing_backends

    assert triggers.testing.StorageBackendTests is triggers.testing_backends.StorageBackendTests
    assert not StorageBackendTests.__name__.startswith("Test")
    checks = [name for name in dir(StorageBackendTests) if name.startswith("test_")]
    assert len(checks) >= 20


class ClaimsToShareLocMem(Kit):
    """Says its storage reaches other processes, but LocMem is per process."""

    locks_across_processes = True

    def __init__(self):
        super().__init__(functools.partial(CacheStorageBackend, cache="locmem"))

    def storage_factory(self):
        return self.backend


def test_kit_fails_a_backend_whose_sessions_stay_in_one_process():
    with pytest.raises(AssertionError, match="instances lost"):
        ClaimsToShareLocMem().test_processes_fire_at_once()


def test_kit_asks_for_a_factory_when_processes_share_the_backend():
    kit = Kit(SoundBackend)
    kit.locks_across_processes = True
    with pytest.raises(NotImplementedError, match="storage_factory"):
        kit.test_processes_fire_at_once()


def test_docs_example_runs(monkeypatch):
    """The example of 'Testing your own backend' (docs/storage.rst), with the plugin as myapp."""
    require_service("redis")
    (code,) = [block for block in python_blocks("docs/storage.rst") if "StorageBackendTests" in block]
    myapp = types.ModuleType("myapp")
    myapp.triggers = types.ModuleType("myapp.triggers")
    myapp.triggers.DictStorageBackend = _plugin().DictStorageBackend
    monkeypatch.setitem(sys.modules, "myapp", myapp)
    monkeypatch.setitem(sys.modules, "myapp.triggers", myapp.triggers)
    namespace = {}
    exec(compile(code, "docs/storage.rst", "exec"), namespace)
    outcomes = {}
    for name in ("TestDictStorageBackend", "TestCacheBackendOnRedis"):
        for check in (c for c in dir(StorageBackendTests) if c.startswith("test_")):
            try:
                getattr(namespace[name](), check)()
                outcomes[name, check] = "passed"
            except unittest.SkipTest:
                outcomes[name, check] = "skipped"
    skipped = sorted(key for key, outcome in outcomes.items() if outcome == "skipped")
    assert skipped == [
        ("TestDictStorageBackend", "test_delete"),
        ("TestDictStorageBackend", "test_processes_fire_at_once"),
    ]
