"""CacheStorageBackend through its public API, on every cache and in both layouts."""

import copy
import threading
import time

import pytest
from django.core.cache import caches

from triggers import BaseTriggerStorage, CacheStorageBackend, TaskInstanceCollection, TriggerManager
from triggers.errors import UnknownInstance
from triggers.locking import LockAcquisitionFailed
from triggers.types import TaskConfig, TaskInstance

from .conftest import LAYOUTS, PAGED_CACHES, cache_independent, locmem_in_each_layout
from .storage_support import (
    CONFIG,
    assert_plain,
    fresh,
    keys_of,
    populate,
    raw,
    sibling_cache,
    stored_record,
)


@pytest.fixture
def make(any_cache, uid, layout):
    """Storage objects on the session ``uid`` in the cache and layout under test."""

    def make(**kwargs):
        kwargs.setdefault("layout", layout)
        return CacheStorageBackend(uid, cache=any_cache, **kwargs)

    return make


# --------------------------------------------------------------------------- loading


def test_nothing_is_read_before_it_is_needed(make, any_cache, uid):
    store = make()
    assert not store.is_loaded
    # Written after the storage object was made, before its first read.
    caches[any_cache].set(
        "triggers.storages.cache:" + uid,
        {"tasks": {"t": {"after": ["a"], "run": "r"}}, "instances": {}, "metas": {"latest_kwargs": {"a": {"n": 1}}}},
    )
    assert not store.is_loaded
    assert list(store.tasks) == ["t"]
    assert store.latest_kwargs == {"a": {"n": 1}}
    assert store.is_loaded


def test_a_session_written_after_construction_is_seen(make):
    reader = make()
    populate(make())
    assert sorted(reader.tasks) == sorted(CONFIG)
    assert reader["t_import#0"].kwargs == {"start": {"subject": 7}}


# The kit checks a new session's tasks, instances, metadata and latest_kwargs on every cache; the collection's length here.
@cache_independent
def test_a_new_session_is_empty(make):
    store = make()
    assert store.tasks == {}
    assert list(store) == []
    assert len(store.instances) == 0
    assert store.metadata == {"latest_kwargs": {}}
    assert store.latest_kwargs == {}


def test_loaded_state_is_cached_until_invalidated(make, stored_session):
    assert stored_session["t_import#0"].status == "unstarted"
    writer = make()
    with writer.acquire_lock():
        writer["t_import#0"].status = "running"
        writer.metadata["extra"] = 1
        writer.save()
    # Still what this object loaded.
    assert stored_session["t_import#0"].status == "unstarted"
    assert "extra" not in stored_session.metadata
    stored_session.invalidate_cache()
    assert stored_session["t_import#0"].status == "running"
    assert stored_session.metadata["extra"] == 1


def test_objects_returned_are_the_cached_ones(stored_session):
    assert stored_session["t_score#0"] is stored_session["t_score#0"]
    assert stored_session.tasks["t_score"] is stored_session.tasks["t_score"]


# --------------------------------------------------------------------------- reading


def test_getitem(stored_session):
    instance = stored_session["t_score#1"]
    assert isinstance(instance, TaskInstance)
    assert instance.name == "t_score#1"
    assert instance.config.name == "t_score"
    assert instance.status == "failed"
    assert instance.kwargs == {"t_import": {}, "pageSaved": {"page": 2}}


# Decided from the loaded name index; the kit checks UnknownInstance (a KeyError) for unknown names on every cache.
@locmem_in_each_layout
@pytest.mark.parametrize("name", ["nope#0", "t_score#2", "t_score#01", "t_score", "t_import", "", "#0"])
def test_getitem_unknown_name(stored_session, name, uid):
    with pytest.raises(KeyError) as info:
        stored_session[name]
    assert isinstance(info.value, UnknownInstance)
    assert repr(name) in str(info.value)
    assert uid in str(info.value)


def test_iteration(stored_session):
    expected = {"t_import#0", "t_score#0", "t_score#1"}
    assert {i.name for i in stored_session} == expected
    assert {i.name for i in stored_session.iter_instances()} == expected
    assert all(isinstance(i, TaskInstance) for i in stored_session)
    assert set(stored_session.instances) == expected
    assert isinstance(stored_session.instances, TaskInstanceCollection)


def test_tasks_and_metadata(stored_session):
    assert set(stored_session.tasks) == set(CONFIG)
    score = stored_session.tasks["t_score"]
    assert isinstance(score, TaskConfig)
    assert score.after == {"t_import", "pageSaved"}
    assert score.unless == {"cancel"}
    assert score.with_params == {"weight": 2}
    assert stored_session.tasks["t_report"].extra == {"description": "kept"}
    assert stored_session.metadata["note"] == "second save"
    assert stored_session.latest_kwargs == {"start": {"subject": 7}, "pageSaved": {"page": 2}}
    assert stored_session.metadata["latest_kwargs"] is stored_session.latest_kwargs


def test_instances_of_task(stored_session):
    by_name = stored_session.instances_of_task("t_score")
    assert set(by_name) == {"t_score#0", "t_score#1"}
    assert all(by_name[name].name == name for name in by_name)
    assert set(stored_session.instances_of_task(stored_session.tasks["t_import"])) == {"t_import#0"}
    assert stored_session.instances_of_task("t_report") == {}
    assert stored_session.instances_of_task("not_configured") == {}


def test_unresolved_queries(make, stored_session):
    with stored_session.acquire_lock():
        stored_session.create_instance("t_score", status="skipped")
        stored_session.create_instance("t_score", status="replayed", metadata={"logLevel": 50})
        stored_session.create_instance("t_score", status="failed", metadata={"logLevel": 50, "logsResolved": True})
        stored_session.create_instance("t_score", status="running", metadata={"logLevel": 30})
        stored_session.save()
    store = make()
    assert {t.name for t in store.get_unresolved_tasks()} == {"t_import", "t_score", "t_report"}
    assert {i.name for i in store.get_unresolved_instances()} == {
        "t_import#0",
        "t_score#1",
        "t_score#4",
        "t_score#5",
    }
    assert {i.name for i in store.get_instances_with_unresolved_logs()} == {"t_score#1"}

    with store.acquire_lock():
        store["t_import#0"].status = "finished"
        for instance in store.instances_of_task("t_score").values():
            instance.status = "finished"
            instance.metadata["logsResolved"] = True
        store.save()
    store = make()
    assert {t.name for t in store.get_unresolved_tasks()} == {"t_report"}
    assert store.get_unresolved_instances() == []
    assert store.get_instances_with_unresolved_logs() == []


# --------------------------------------------------------------------------- changing


def test_create_instance_names_and_arguments(make):
    store = make()
    with store.acquire_lock():
        store.update_configuration(CONFIG)
        a = store.create_instance("t_score")
        b = store.create_instance(store.tasks["t_score"])
        c = store.create_instance("t_import", status="failed", metadata={"logLevel": 40}, kwargs={"start": {}})
        d = store.create_instance("t_import", abandonState=["x"])
        store.save()
    assert [a.name, b.name, c.name, d.name] == ["t_score#0", "t_score#1", "t_import#0", "t_import#1"]
    assert a.status == "unstarted" and a.kwargs == {} and a.metadata == {}
    assert store["t_score#1"] is b
    again = make()
    assert again["t_import#0"].serialize() == c.serialize()
    assert again["t_import#1"].abandon_state == {"x"}
    assert again["t_score#0"].config.name == "t_score"
    with again.acquire_lock():
        assert again.create_instance("t_score").name == "t_score#2"
        again.save()
    assert set(make().instances) == {"t_score#0", "t_score#1", "t_score#2", "t_import#0", "t_import#1"}


def test_clone_instance(make, stored_session):
    with stored_session.acquire_lock():
        original = stored_session["t_score#1"]
        original.abandon_state.add("cancel")
        original.metadata["exceptionType"] = "builtins.ValueError"
        clone = stored_session.clone_instance("t_score#1")
        second = stored_session.clone_instance(clone)
        stored_session.save()
    assert clone.name == "t_score#2"
    assert second.name == "t_score#3"
    assert clone.config is original.config
    assert clone.status == "unstarted"
    assert clone.kwargs == original.kwargs
    assert clone.abandon_state == {"cancel"}
    assert clone.metadata == {"depth": 1, "parent": "t_score#1"}
    assert second.metadata == {"depth": 2, "parent": "t_score#2"}
    # copies, not shared objects
    clone.kwargs["pageSaved"]["page"] = 99
    clone.abandon_state.add("other")
    assert original.kwargs["pageSaved"] == {"page": 2}
    assert original.abandon_state == {"cancel"}
    stored = make()["t_score#2"]
    assert stored.metadata == {"depth": 1, "parent": "t_score#1"}
    assert stored.kwargs == {"t_import": {}, "pageSaved": {"page": 2}}


def test_update_configuration_merges_and_is_saved_only_by_save(make, stored_session):
    with stored_session.acquire_lock():
        stored_session.update_configuration(
            {
                "t_import": {"after": ["start"], "run": "import_subject_v2"},
                "t_new": {"after": ["done"], "run": "new"},
            }
        )
        assert set(stored_session.tasks) == set(CONFIG) | {"t_new"}
        assert stored_session.tasks["t_import"].run == "import_subject_v2"
        assert stored_session.tasks["t_score"].with_params == {"weight": 2}  # untouched
        # Instances follow the new definition of their task.
        assert stored_session["t_import#0"].config.run == "import_subject_v2"
        assert stored_session["t_import#0"].config.after == {"start"}
        # Not persisted yet.
        other = make()
        assert "t_new" not in other.tasks
        assert other.tasks["t_import"].run == "import_subject"
        stored_session.save()
    stored = make()
    assert set(stored.tasks) == set(CONFIG) | {"t_new"}
    assert stored.tasks["t_import"].run == "import_subject_v2"
    assert stored["t_import#0"].config.run == "import_subject_v2"
    assert stored["t_score#0"].config.with_params == {"weight": 2}


def test_update_configuration_without_save_is_lost(make, stored_session):
    with stored_session.acquire_lock():
        stored_session.update_configuration({"t_new": {"after": ["done"], "run": "new"}})
    assert "t_new" not in make().tasks


# --------------------------------------------------------------------------- locking


def test_acquire_lock_is_reentrant_and_yields_the_storage(make):
    store = make()
    assert not store.has_lock
    with store.acquire_lock() as outer:
        assert outer is store
        assert store.has_lock
        store.update_configuration(CONFIG)
        with store.acquire_lock() as inner:
            assert inner is store
            assert store.has_lock
            # Re-entry keeps what was loaded and changed so far.
            assert set(store.tasks) == set(CONFIG)
            store.save()
        assert store.has_lock
        store.metadata["after_inner"] = True
        store.save()
    assert not store.has_lock
    stored = make()
    assert set(stored.tasks) == set(CONFIG)
    assert stored.metadata["after_inner"] is True


def test_the_lock_excludes_other_holders(make):
    store, other = make(), make()
    with store.acquire_lock():
        with pytest.raises(LockAcquisitionFailed):
            with other.acquire_lock(block=False):
                pass
        outcome = []

        def contend():
            try:
                with store.acquire_lock(block=False):
                    outcome.append("acquired")
            except LockAcquisitionFailed:
                outcome.append("refused")

        thread = threading.Thread(target=contend)
        thread.start()
        thread.join()
        assert outcome == ["refused"]  # re-entrant per thread only
    with other.acquire_lock(block=False):
        pass


def test_entering_the_lock_reloads(make, stored_session):
    stale = make()
    assert stale["t_import#0"].status == "unstarted"
    with stored_session.acquire_lock():
        stored_session["t_import#0"].status = "running"
        stored_session.save()
    assert stale["t_import#0"].status == "unstarted"  # cached
    with stale.acquire_lock():
        assert stale["t_import#0"].status == "running"
        assert stale.has_lock


def test_lock_entry_drops_unsaved_changes(make, stored_session):
    stored_session.metadata["unsaved"] = True
    with stored_session.acquire_lock():
        assert "unsaved" not in stored_session.metadata


@cache_independent
def test_save_needs_the_lock(stored_session):
    """Refused before anything is written."""
    stored_session.tasks
    with pytest.raises(RuntimeError, match="acquire_lock"):
        stored_session.save()


def test_save_writes_nothing_when_nothing_was_loaded(make, any_cache, uid):
    store = make()
    with store.acquire_lock():
        store.save()
    assert raw(any_cache, keys_of(store, [])) == {}

    populate(make())
    before = raw(any_cache, keys_of(store))
    store = make()
    with store.acquire_lock():
        store.save()
    assert raw(any_cache, keys_of(store)) == before


def test_save_then_invalidate_under_the_lock_keeps_the_save(make, stored_session):
    with stored_session.acquire_lock():
        stored_session["t_import#0"].status = "running"
        stored_session.save()
        stored_session.invalidate_cache()
        assert stored_session["t_import#0"].status == "running"
        stored_session["t_import#0"].status = "finished"
        stored_session.save()
    assert make()["t_import#0"].status == "finished"


def test_changes_without_save_are_not_written(make, stored_session, any_cache):
    before = raw(any_cache, keys_of(stored_session))
    with stored_session.acquire_lock():
        stored_session["t_import#0"].status = "running"
        stored_session.create_instance("t_report")
        stored_session.metadata["x"] = 1
    assert raw(any_cache, keys_of(stored_session)) == before
    assert make()["t_import#0"].status == "unstarted"


def test_an_error_inside_the_lock_after_save_still_keeps_the_save(make, stored_session):
    with pytest.raises(ZeroDivisionError):
        with stored_session.acquire_lock():
            stored_session["t_import#0"].status = "running"
            stored_session.save()
            1 / 0
    assert make()["t_import#0"].status == "running"
    assert not stored_session.has_lock


# --------------------------------------------------------------------------- misc


def test_close(make, stored_session):
    assert stored_session["t_import#0"]
    stored_session.close()
    # The cache reconnects on the next use.
    stored_session.invalidate_cache()
    assert stored_session["t_import#0"].status == "unstarted"
    other = make()
    other.close()
    assert set(other.tasks) == set(CONFIG)


def test_debug_repr_is_plain_data(stored_session):
    data = stored_session.debug_repr()
    assert set(data) == {"tasks", "instances", "metas"}
    assert_plain(data)
    assert set(data["tasks"]) == set(CONFIG)
    assert data["tasks"]["t_score"]["after"] == ["pageSaved", "t_import"]
    assert data["instances"]["t_score#1"] == {
        "abandonState": [],
        "kwargs": {"t_import": {}, "pageSaved": {"page": 2}},
        "metadata": {"logLevel": 40},
        "status": "failed",
        "task": "t_score",
    }
    assert data["metas"]["latest_kwargs"] == {"start": {"subject": 7}, "pageSaved": {"page": 2}}
    assert data["metas"]["note"] == "second save"


# A copy of what was loaded; the kit changes a copy and checks the storage on every cache.
@locmem_in_each_layout
def test_debug_repr_is_a_copy(stored_session):
    data = stored_session.debug_repr()
    snapshot = copy.deepcopy(data)
    data["instances"]["t_score#1"]["kwargs"]["pageSaved"]["page"] = 99
    data["instances"]["t_score#1"]["metadata"]["logLevel"] = 0
    data["tasks"]["t_score"]["withParams"]["weight"] = 0
    data["metas"]["latest_kwargs"].clear()
    assert stored_session.debug_repr() == snapshot
    assert stored_session["t_score#1"].kwargs["pageSaved"] == {"page": 2}
    assert stored_session.tasks["t_score"].with_params == {"weight": 2}


# The class, not the cache: once.
@cache_independent
def test_storage_is_a_base_trigger_storage(stored_session):
    assert isinstance(stored_session, BaseTriggerStorage)
    assert CacheStorageBackend.name == "cache"


def test_works_with_the_manager(make):
    manager = TriggerManager(make())
    manager.update_configuration(CONFIG)
    manager.fire("start", {"subject": 1})
    manager.fire("pageSaved", {"page": 1})
    manager.fire("pageSaved", {"page": 2})
    store = make()
    # Nothing became ready: t_import waits for "upload", t_score for "t_import".
    assert {i.name: i.status for i in store} == {
        "t_import#0": "unstarted",
        "t_score#0": "unstarted",
        "t_score#1": "unstarted",
    }
    assert store["t_import#0"].kwargs == {"start": {"subject": 1}}
    assert store["t_score#0"].kwargs == {"pageSaved": {"page": 1}}
    assert store["t_score#1"].kwargs == {"pageSaved": {"page": 2}}
    assert store.latest_kwargs == {"start": {"subject": 1}, "pageSaved": {"page": 2}}
    manager.fire("cancel", {"why": "test"})
    store = make()
    assert {i.name: i.status for i in store} == {
        "t_import#0": "unstarted",
        "t_score#0": "abandoned",
        "t_score#1": "abandoned",
    }
    assert store["t_score#0"].abandon_state == {"cancel"}
    assert store.latest_kwargs["cancel"] == {"why": "test"}


# --------------------------------------------------------------------------- the cache


def test_alias_or_cache_object(any_cache, uid, layout):
    populate(CacheStorageBackend(uid, cache=any_cache, layout=layout))
    by_object = CacheStorageBackend(uid, cache=caches[any_cache], layout=layout)
    assert by_object.cache is caches[any_cache]
    assert by_object.debug_repr() == CacheStorageBackend(uid, cache=any_cache).debug_repr()


def test_default_cache_is_the_default_alias(uid):
    store = CacheStorageBackend(uid)
    assert store.cache is caches["default"]
    populate(store)
    assert set(CacheStorageBackend(uid, cache=caches["default"]).tasks) == set(CONFIG)


# The prefix and the uid, whatever the cache: once.
@cache_independent
def test_cache_keys(stored_session, uid):
    assert stored_session.cache_key == "triggers.storages.cache:" + uid


def test_bad_cache_and_options(uid):
    with pytest.raises(TypeError):
        CacheStorageBackend(uid, cache=42)
    with pytest.raises(ValueError, match="layout"):
        CacheStorageBackend(uid, layout="sharded")
    for timeout in (0, -1, "10", True):
        with pytest.raises(ValueError, match="timeout"):
            CacheStorageBackend(uid, timeout=timeout)


def test_expiry_follows_the_timeout(any_cache):
    """``timeout`` reaches every write: the session, its records and its witness.

    Both layouts' sessions are made together and expire in one wait per cache
    (polled, with a deadline that only guards against hanging).
    """
    import uuid

    # Some caches keep whole seconds and round an expiry down, so a 1 s
    # timeout may end at once; 3 s leaves the test room on a slow database.
    short_default = sibling_cache(any_cache, TIMEOUT=3)
    sessions = {}
    for layout in ("split", "single", "paged") if any_cache in PAGED_CACHES else ("split", "single"):
        sessions.update({
            (layout, "explicit-3s"): CacheStorageBackend(
                "t-" + uuid.uuid4().hex, cache=any_cache, timeout=3, layout=layout),
            (layout, "default-3s"): CacheStorageBackend("t-" + uuid.uuid4().hex, cache=short_default, layout=layout),
            (layout, "none"): CacheStorageBackend(
                "t-" + uuid.uuid4().hex, cache=short_default, timeout=None, layout=layout),
            (layout, "explicit-60s"): CacheStorageBackend(
                "t-" + uuid.uuid4().hex, cache=short_default, timeout=60, layout=layout),
        })
    expected = {}
    for name, store in sessions.items():
        populate(store)
        expected[name] = fresh(store).debug_repr()
        assert expected[name]["instances"]
    keys = {name: keys_of(store) for name, store in sessions.items()}
    expiring = [name for name in sessions if name[1] in ("explicit-3s", "default-3s")]
    lasting = [name for name in sessions if name not in expiring]
    deadline = time.monotonic() + 30
    while any(raw(any_cache, keys[name]) for name in expiring):
        assert time.monotonic() < deadline, {name: raw(any_cache, keys[name]) for name in expiring}
        time.sleep(0.25)
    for name in expiring:
        assert fresh(sessions[name]).debug_repr() == {"tasks": {}, "instances": {}, "metas": {"latest_kwargs": {}}}
    for name in lasting:
        assert fresh(sessions[name]).debug_repr() == expected[name], name
    short_default.close()


# --------------------------------------------------------------------------- layouts


def test_layout_defaults_to_the_setting(settings, uid, any_cache):
    assert CacheStorageBackend(uid, cache=any_cache).layout == "split"
    settings.TRIGGERS_CACHE_LAYOUT = "single"
    assert CacheStorageBackend(uid, cache=any_cache).layout == "single"


def test_single_layout_writes_the_2x_value(any_cache, uid):
    store = populate(CacheStorageBackend(uid, cache=any_cache, layout="single"))
    value = caches[any_cache].get(store.cache_key)
    assert set(value) == {"tasks", "instances", "metas"}
    assert_plain(value)
    assert value == store.debug_repr()


def test_split_layout_keeps_instances_in_their_own_keys(any_cache, uid):
    store = populate(CacheStorageBackend(uid, cache=any_cache, layout="split"))
    head = caches[any_cache].get(store.cache_key)
    assert isinstance(head, dict)
    # A 2.x reader fails on the head rather than read a session with nothing in it.
    assert set(head["instances"]) == set(head["tasks"]) == {"!split-layout"}
    assert all(not isinstance(entry, dict) for entry in head["tasks"].values())
    assert caches[any_cache].get(store.witness_key) is not None
    expected = store.debug_repr()["instances"]
    for name, record in expected.items():
        # Memcached keeps each record tagged with its writer's fencing token.
        assert stored_record(any_cache, store, name) == record


def test_record_keys_of_awkward_instance_names(any_cache, uid):
    store = CacheStorageBackend(uid, cache=any_cache)
    names = ["a task with spaces", "t\u00e9che/\u00fcber", "x" * 120]
    with store.acquire_lock():
        store.update_configuration({name: {"after": ["never"], "run": "r"} for name in names})
        for name in names:
            store.create_instance(name, kwargs={"n": name})
        store.save()
    with store.acquire_lock():
        store.metadata["settle"] = True
        store.save()
    for name in names:
        key = store.record_key(name + "#0")
        assert len(key.encode()) < 240
        assert not any(c.isspace() for c in key)
    store = CacheStorageBackend(uid, cache=any_cache)
    assert {i.name: i.kwargs for i in store} == {name + "#0": {"n": name} for name in names}


@pytest.mark.parametrize(
    "first, second",
    [
        ("single", "split"),
        ("split", "single"),
        ("split", "paged"),
        ("paged", "split"),
        ("single", "paged"),
        ("paged", "single"),
    ],
)
def test_switching_layouts_keeps_the_session(any_cache, uid, first, second):
    readers = LAYOUTS if any_cache in PAGED_CACHES else ["split", "single"]
    store = populate(CacheStorageBackend(uid, cache=any_cache, layout=first))
    before = store.debug_repr()
    switched = CacheStorageBackend(uid, cache=any_cache, layout=second)
    assert switched.debug_repr() == before  # each layout reads the other
    with switched.acquire_lock():
        switched["t_import#0"].status = "running"
        switched.create_instance("t_report", kwargs={"approve": {}})
        switched.save()
    expected = copy.deepcopy(before)
    expected["instances"]["t_import#0"]["status"] = "running"
    expected["instances"]["t_report#0"] = {
        "abandonState": [],
        "kwargs": {"approve": {}},
        "metadata": {},
        "status": "unstarted",
        "task": "t_report",
    }
    for reader_layout in readers:
        assert CacheStorageBackend(uid, cache=any_cache, layout=reader_layout).debug_repr() == expected
    # A further save in the new layout, and back again.
    for layout in (second, first, second):
        store = CacheStorageBackend(uid, cache=any_cache, layout=layout)
        with store.acquire_lock():
            store.metadata.setdefault("saves", []).append(layout)
            store.save()
        expected["metas"]["saves"] = expected["metas"].get("saves", []) + [layout]
        for reader_layout in readers:
            assert CacheStorageBackend(uid, cache=any_cache, layout=reader_layout).debug_repr() == expected


def test_layouts_store_the_same_session(any_cache):
    import uuid

    split = populate(CacheStorageBackend("t-" + uuid.uuid4().hex, cache=any_cache, layout="split"))
    single = populate(CacheStorageBackend("t-" + uuid.uuid4().hex, cache=any_cache, layout="single"))
    assert fresh(split).debug_repr() == fresh(single).debug_repr()


def test_many_saves_in_the_split_layout(make, layout):
    """Records move between the head and their own keys across saves; nothing is lost."""
    store = make()
    with store.acquire_lock():
        store.update_configuration(CONFIG)
        store.save()
    for round_ in range(6):
        store = make()
        with store.acquire_lock():
            store.create_instance("t_score", kwargs={"pageSaved": {"page": round_}})
            if round_:
                store[f"t_score#{round_ - 1}"].status = "finished"
            if round_ % 2:
                store.update_configuration({f"t_extra{round_}": {"after": ["x"], "run": "r"}})
            store.save()
    final = make()
    assert {i.name: i.status for i in final} == {
        **{f"t_score#{n}": "finished" for n in range(5)},
        "t_score#5": "unstarted",
    }
    assert all(final[f"t_score#{n}"].kwargs == {"pageSaved": {"page": n}} for n in range(6))
    assert set(final.tasks) == set(CONFIG) | {"t_extra1", "t_extra3", "t_extra5"}
