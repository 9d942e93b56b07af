"""Bad input gets a typed error naming the bad value, and the stored session stays as it was."""


import pytest
from django.core.cache import caches

from triggers import CacheStorageBackend, TriggerManager
from triggers.errors import (
    InvalidSessionUid,
    InvalidTaskConfig,
    StorageCorrupted,
    TriggersError,
    UnknownInstance,
    UnknownTask,
    UnserializableValue,
)

from .conftest import cache_independent
from .storage_support import CONFIG, fresh, keys_of, populate

EXTRA_NAMES = ("nope#0", "t_report#0", "t_import#1", "t_score#2")


class Unchanged:
    """Reads every key of a session (and some it must not create) before and after."""

    def __init__(self, store, names=None):
        self.alias_cache = store.cache
        self.keys = keys_of(store, names) + [store.record_key(n) for n in EXTRA_NAMES]
        self.before = self.alias_cache.get_many(self.keys)

    def check(self):
        assert self.alias_cache.get_many(self.keys) == self.before


# --------------------------------------------------------------------------- unknown names


@pytest.mark.parametrize("name", ["nope#0", "t_score#7", "t_score"])
def test_unknown_instance_in_update_instance_status(stored_session, name, uid):
    unchanged = Unchanged(stored_session)
    manager = TriggerManager(fresh(stored_session))
    with pytest.raises(UnknownInstance) as info:
        manager.update_instance_status(name, "finished", {"result": {}})
    assert isinstance(info.value, KeyError)
    assert repr(name) in str(info.value) and uid in str(info.value)
    unchanged.check()
    for call in (
        lambda: manager.update_instance_metadata(name, {"x": 1}),
        lambda: manager.mark_instance_logs_resolved(name),
        lambda: manager.skip_failed_instance(name),
        lambda: manager.replay_failed_instance(name),
    ):
        with pytest.raises(UnknownInstance, match=repr(name).replace("#", "\\#")):
            call()
    unchanged.check()


def test_unknown_task_in_create_instance(stored_session, uid):
    unchanged = Unchanged(stored_session)
    with pytest.raises(UnknownTask) as info:
        with stored_session.acquire_lock():
            stored_session.create_instance("nope")
            stored_session.save()
    assert isinstance(info.value, KeyError)
    assert "'nope'" in str(info.value) and uid in str(info.value)
    unchanged.check()
    with pytest.raises(UnknownTask, match="t_import#0"):
        with stored_session.acquire_lock():
            stored_session.create_instance("t_import#0")  # an instance's name is not a task's
    with pytest.raises(UnknownInstance, match="nope#0"):
        with stored_session.acquire_lock():
            stored_session.clone_instance("nope#0")
    unchanged.check()


@cache_independent
def test_status_that_does_not_exist(stored_session, uid):
    """Checked before the manager reads the session."""
    unchanged = Unchanged(stored_session)
    manager = TriggerManager(stored_session)
    with pytest.raises(ValueError, match="'done'"):
        manager.update_instance_status("t_import#0", "done")
    unchanged.check()


def test_skip_or_replay_of_an_instance_that_did_not_fail(stored_session):
    unchanged = Unchanged(stored_session)
    manager = TriggerManager(stored_session)
    with pytest.raises(ValueError, match="t_score#0"):
        manager.skip_failed_instance("t_score#0")
    with pytest.raises(ValueError, match="t_import#0"):
        manager.replay_failed_instance("t_import#0")
    unchanged.check()


# --------------------------------------------------------------------------- task definitions

MALFORMED = {
    "missing-after": ({"run": "r"}, "'after'"),
    "missing-run": ({"after": ["a"]}, "'run'"),
    "non-string-trigger": ({"after": ["a", 7], "run": "r"}, "7"),
    "empty-trigger": ({"after": [""], "run": "r"}, "''"),
    "unhashable-trigger": ({"after": [["a"]], "run": "r"}, "['a']"),
    "after-a-string": ({"after": "ab", "run": "r"}, "'ab'"),
    "and-every-not-a-string": ({"after": [], "run": "r", "andEvery": ["tick"]}, "['tick']"),
    "unless-not-a-list": ({"after": ["a"], "run": "r", "unless": "cancel"}, "'cancel'"),
    "unless-holds-a-number": ({"after": ["a"], "run": "r", "unless": [1.5]}, "1.5"),
    "run-not-a-string": ({"after": ["a"], "run": ["r"]}, "['r']"),
    "with-params-not-a-dict": ({"after": ["a"], "run": "r", "withParams": "x=1"}, "'x=1'"),
    "not-a-dict": (["a", "r"], "['a', 'r']"),
}


def assert_definition_refused(stored_session, uid, definition, shown):
    unchanged = Unchanged(stored_session)
    manager = TriggerManager(fresh(stored_session))
    config = {
        "t_valid_before": {"after": ["x"], "run": "r"},
        "t_bad": definition,
        "t_valid_after": {"after": ["y"], "run": "r"},
        "t_import": {"after": ["changed"], "run": "changed"},
    }
    with pytest.raises(InvalidTaskConfig) as info:
        manager.update_configuration(config)
    assert isinstance(info.value, ValueError)
    assert "'t_bad'" in str(info.value)
    assert shown in str(info.value)
    unchanged.check()
    stored = CacheStorageBackend(uid, cache=stored_session.cache)
    assert set(stored.tasks) == set(CONFIG)
    assert stored.tasks["t_import"].run == "import_subject"


@cache_independent
@pytest.mark.parametrize("case", sorted(MALFORMED))
def test_malformed_definitions(stored_session, uid, case):
    """Every definition is checked before the session's task table is read."""
    assert_definition_refused(stored_session, uid, *MALFORMED[case])


def test_a_malformed_definition_leaves_every_cache_as_it_was(stored_session, uid):
    """The check runs inside the manager's attempt at a save, which has read
    the session's keys or taken its lock by then: in each cache and layout the
    refused attempt writes nothing."""
    assert_definition_refused(stored_session, uid, *MALFORMED["missing-run"])


@cache_independent
def test_malformed_configuration_containers(stored_session, uid):
    """Refused at the same point as a malformed definition (see above, on every cache)."""
    unchanged = Unchanged(stored_session)
    manager = TriggerManager(stored_session)
    with pytest.raises(InvalidTaskConfig, match=r"\['t'\]"):
        manager.update_configuration(["t"])
    with pytest.raises(InvalidTaskConfig, match="42"):
        manager.update_configuration({42: {"after": ["a"], "run": "r"}})
    unchanged.check()


@cache_independent
def test_malformed_definition_through_the_storage_changes_nothing_loaded(stored_session):
    """Every definition is checked before any is applied to what was loaded."""
    with stored_session.acquire_lock():
        before = stored_session.debug_repr()
        with pytest.raises(InvalidTaskConfig):
            stored_session.update_configuration({"t_new": {"after": ["a"], "run": "r"}, "t_bad": {"run": "r"}})
        assert stored_session.debug_repr() == before


# --------------------------------------------------------------------------- uids

BAD_UIDS = {
    "empty": "",
    "151-bytes": "x" * 151,
    "151-bytes-utf8": "\u00e9" * 75 + "x",
    "space": "a b",
    "tab": "a\tb",
    "newline": "a\nb",
    "nul": "a\x00b",
    "del": "a\x7fb",
    "nbsp": "a\u00a0b",
    "escape": "\x1b[0m",
}


@pytest.mark.parametrize("case", sorted(BAD_UIDS))
def test_invalid_uids(case):
    uid = BAD_UIDS[case]
    with pytest.raises(InvalidSessionUid) as info:
        CacheStorageBackend(uid)
    assert repr(uid) in str(info.value)
    assert info.value.uid == uid
    assert isinstance(info.value, ValueError)


@pytest.mark.parametrize("uid", [None, 42, b"bytes-uid", ("a",)])
def test_non_string_uids(uid):
    with pytest.raises(InvalidSessionUid) as info:
        CacheStorageBackend(uid)
    assert repr(uid) in str(info.value)


@pytest.mark.parametrize(
    "uid",
    ["x" * 150, "\u00e9" * 75, "\U0001f600" * 37 + "xx", "a:b/c.d#e@f", "\u65e5\u672c\u8a9e-session"],
)
def test_valid_uids_work_on_every_cache(any_cache, uid):
    """The same rule on every cache: what passes keys everywhere, locks and record keys included."""
    assert len(uid.encode("utf-8")) <= 150
    caches[any_cache].delete_many(keys_of(CacheStorageBackend(uid, cache=any_cache), ["t_import#0"]))
    try:
        store = populate(CacheStorageBackend(uid, cache=any_cache))
        assert CacheStorageBackend(uid, cache=any_cache)["t_import#0"].kwargs == {"start": {"subject": 7}}
        manager = TriggerManager(store)
        manager.fire("cancel")
        assert CacheStorageBackend(uid, cache=any_cache)["t_score#0"].abandon_state == set()
        assert CacheStorageBackend(uid, cache=any_cache).latest_kwargs["cancel"] == {}
    finally:
        caches[any_cache].delete_many(
            keys_of(CacheStorageBackend(uid, cache=any_cache), ["t_import#0", "t_score#0", "t_score#1"])
        )


# --------------------------------------------------------------------------- corrupt stored values

NOT_SESSIONS = {
    "string": "garbage",
    "list": ["tasks", "instances", "metas"],
    "number": 42,
    "empty-dict": {},
    "missing-instances": {"tasks": {}, "metas": {}},
    "missing-metas": {"tasks": {}, "instances": {}},
    "tasks-not-a-dict": {"tasks": ["t"], "instances": {}, "metas": {}},
    "instances-not-a-dict": {"tasks": {}, "instances": "t#0", "metas": {}},
    "metas-not-a-dict": {"tasks": {}, "instances": {}, "metas": "x"},
    "latest-kwargs-not-a-dict": {"tasks": {}, "instances": {}, "metas": {"latest_kwargs": ["a"]}},
    "task-garbage": {"tasks": {"t": "garbage"}, "instances": {}, "metas": {}},
    "task-malformed": {"tasks": {"t": {"after": 5, "run": "r"}}, "instances": {}, "metas": {}},
    "task-missing-run": {"tasks": {"t": {"after": ["a"]}}, "instances": {}, "metas": {}},
    "instance-garbage": {"tasks": {"t": {"after": ["a"], "run": "r"}}, "instances": {"t#0": "garbage"}, "metas": {}},
    "instance-of-unknown-task": {
        "tasks": {"t": {"after": ["a"], "run": "r"}},
        "instances": {"t#0": {"task": "u", "status": "unstarted"}},
        "metas": {},
    },
    "instance-bad-status": {
        "tasks": {"t": {"after": ["a"], "run": "r"}},
        "instances": {"t#0": {"task": "t", "status": 3}},
        "metas": {},
    },
    "instance-kwargs-not-a-dict": {
        "tasks": {"t": {"after": ["a"], "run": "r"}},
        "instances": {"t#0": {"task": "t", "status": "unstarted", "kwargs": "a"}},
        "metas": {},
    },
    "instance-metadata-not-a-dict": {
        "tasks": {"t": {"after": ["a"], "run": "r"}},
        "instances": {"t#0": {"task": "t", "status": "unstarted", "metadata": [1]}},
        "metas": {},
    },
    "instance-abandon-state-garbage": {
        "tasks": {"t": {"after": ["a"], "run": "r"}},
        "instances": {"t#0": {"task": "t", "status": "unstarted", "abandonState": 7}},
        "metas": {},
    },
}


def assert_refused(store, uid, raw_key, value, fire=("a", "start"), configure=True):
    """Every way into the session raises StorageCorrupted; the stored value stays."""
    for read in (
        lambda: store.debug_repr(),
        lambda: list(store),
        lambda: store.get_unresolved_tasks(),
    ):
        store.invalidate_cache()
        with pytest.raises(StorageCorrupted) as info:
            read()
        assert uid in str(info.value)
        assert info.value.uid == uid
        assert isinstance(info.value, TriggersError)
    manager = TriggerManager(fresh(store))
    for trigger in fire:
        with pytest.raises(StorageCorrupted):
            manager.fire(trigger)
    if configure:
        with pytest.raises(StorageCorrupted):
            manager.update_configuration({"t_new": {"after": ["a"], "run": "r"}})
    assert store.cache.get(raw_key) == value


@pytest.mark.parametrize("case", sorted(NOT_SESSIONS))
def test_stored_values_that_are_not_sessions(any_cache, uid, layout, case):
    value = NOT_SESSIONS[case]
    key = "triggers.storages.cache:" + uid
    caches[any_cache].set(key, value)
    store = CacheStorageBackend(uid, cache=any_cache, layout=layout)
    assert_refused(store, uid, key, value)


@pytest.mark.parametrize("part", ["tasks_version", "metas", "counts", "irregular", "open", "delta", "generation"])
def test_split_head_missing_a_part(any_cache, uid, part):
    store = populate(CacheStorageBackend(uid, cache=any_cache, layout="split"))
    names = list(fresh(store).instances)
    head = caches[any_cache].get(store.cache_key)
    del head[part]
    caches[any_cache].set(store.cache_key, head)
    unchanged = Unchanged(store, names)
    with pytest.raises(StorageCorrupted) as info:
        CacheStorageBackend(uid, cache=any_cache).tasks
    assert repr(part) in str(info.value)
    assert_refused(store, uid, store.cache_key, head)
    unchanged.check()


@pytest.mark.parametrize("part", ["tasks_version", "counts", "delta", "generation"])
def test_split_head_with_a_part_of_the_wrong_type(any_cache, uid, part):
    store = populate(CacheStorageBackend(uid, cache=any_cache, layout="split"))
    head = caches[any_cache].get(store.cache_key)
    head[part] = "garbage"
    caches[any_cache].set(store.cache_key, head)
    assert_refused(store, uid, store.cache_key, head)


RECORDS = {
    "string": "garbage",
    "none-like": [],
    "no-task": {"status": "unstarted"},
    "other-task": {"task": "t_score", "status": "unstarted"},
    "unknown-task": {"task": "nope", "status": "unstarted"},
    "bad-status": {"task": "t_import", "status": "exploded"},
    "kwargs-garbage": {"task": "t_import", "status": "unstarted", "kwargs": 5},
}


@pytest.mark.parametrize("case", sorted(RECORDS))
def test_instance_record_that_is_garbage(any_cache, uid, case):
    store = populate(CacheStorageBackend(uid, cache=any_cache, layout="split"))
    key = store.record_key("t_import#0")
    assert caches[any_cache].get(key) is not None  # settled into its own key
    names = list(fresh(store).instances)
    caches[any_cache].set(key, RECORDS[case])
    unchanged = Unchanged(store, names)
    with pytest.raises(StorageCorrupted) as info:
        CacheStorageBackend(uid, cache=any_cache)["t_import#0"]
    assert "t_import#0" in str(info.value)
    # "start" reaches t_import's waiting instance, whose record is garbage.
    # (Configuring tasks reads no instance record, so it is not refused.)
    assert_refused(store, uid, key, RECORDS[case], fire=("start",), configure=False)
    unchanged.check()


# --------------------------------------------------------------------------- unstorable values


class Opaque:
    def __reduce__(self):
        raise TypeError("Opaque objects refuse to be pickled")


def unstorable_values(tmp_path):
    handle = open(tmp_path / "f.txt", "w")  # noqa: SIM115 (closed by the test)
    return {
        "lambda": {"callback": lambda: 1},
        "nested-lambda": {"deep": [1, {"x": lambda: 2}]},
        "open-file": {"file": handle},
        "opaque": {"thing": Opaque()},
        "generator": {"gen": (i for i in range(3))},
    }, handle


@cache_independent
@pytest.mark.parametrize("case", ["lambda", "nested-lambda", "open-file", "opaque", "generator"])
def test_unstorable_trigger_kwargs(stored_session, uid, tmp_path, case):
    """The manager pickles each value, as the caches do, before it reads the session."""
    values, handle = unstorable_values(tmp_path)
    kwargs = values[case]
    try:
        unchanged = Unchanged(stored_session)
        manager = TriggerManager(fresh(stored_session))
        with pytest.raises(UnserializableValue) as info:
            manager.fire("start", kwargs)
        assert isinstance(info.value, TypeError)
        assert "'start'" in str(info.value)
        assert repr(kwargs)[:40] in str(info.value)
        with pytest.raises(UnserializableValue):
            manager.update_instance_status("t_import#0", "failed", {"exceptionContext": kwargs})
        with pytest.raises(UnserializableValue):
            manager.update_instance_metadata("t_import#0", kwargs)
        with pytest.raises(UnserializableValue):
            manager.skip_failed_instance("t_score#1", result=kwargs)
        with pytest.raises(UnserializableValue):
            manager.replay_failed_instance("t_score#1", replacement_kwargs=kwargs)
        with pytest.raises(UnserializableValue):
            manager.update_configuration({"t_new": {"after": ["a"], "run": "r", "withParams": kwargs}})
        unchanged.check()
    finally:
        handle.close()


@pytest.mark.parametrize("where", ["instance-kwargs", "instance-metadata", "new-instance", "latest-kwargs", "task-params"])
def test_unstorable_values_set_through_the_storage(stored_session, uid, where):
    """Below the manager nothing checks values up front (saves do not pickle twice).

    A value the cache cannot pickle still fails the save, with
    UnserializableValue, and the session reads as it was: on Redis nothing
    is written, elsewhere only the content-neutral first step of the save is.
    """
    before = fresh(stored_session).debug_repr()
    bad = {"callback": lambda: 1}
    with pytest.raises(UnserializableValue) as info:
        with stored_session.acquire_lock():
            if where == "instance-kwargs":
                stored_session["t_import#0"].kwargs["upload"] = bad
            elif where == "instance-metadata":
                stored_session["t_score#0"].metadata["result"] = bad
            elif where == "new-instance":
                stored_session.create_instance("t_report", kwargs={"approve": bad})
            elif where == "latest-kwargs":
                stored_session.latest_kwargs["start"] = bad
            else:
                stored_session.update_configuration({"t_new": {"after": ["a"], "run": "r", "withParams": bad}})
            stored_session.save()
    assert "lambda" in str(info.value)
    assert fresh(stored_session).debug_repr() == before
    assert not stored_session.has_lock
    # The lock was let go and the session still works.
    with stored_session.acquire_lock(block=False):
        stored_session["t_import#0"].status = "running"
        stored_session.save()
    assert CacheStorageBackend(uid, cache=stored_session.cache)["t_import#0"].status == "running"


@cache_independent
def test_task_config_filed_under_another_name_is_refused(stored_session):
    """Refused at the same point as a malformed definition (see above, on every cache)."""
    from triggers import TriggerManager
    from triggers.types import TaskConfig

    before = fresh(stored_session).debug_repr()
    with pytest.raises(InvalidTaskConfig) as info:
        TriggerManager(stored_session).update_configuration({"t_new": TaskConfig("t_other", after=["x"], run="r")})
    assert "t_new" in str(info.value) and "t_other" in str(info.value)
    assert fresh(stored_session).debug_repr() == before


def test_a_corrupt_session_keeps_failing_rather_than_half_loading(any_cache, uid):
    store = populate(CacheStorageBackend(uid, cache=any_cache, layout="single"))
    value = caches[any_cache].get(store.cache_key)
    first = next(iter(value["instances"]))
    value["instances"][first] = "garbage"
    caches[any_cache].set(store.cache_key, value)
    reader = CacheStorageBackend(uid, cache=any_cache)
    for _ in range(2):
        with pytest.raises(StorageCorrupted):
            reader.tasks
        with pytest.raises(StorageCorrupted):
            reader.instances
