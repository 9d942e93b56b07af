"""Bad input gets a typed error naming the bad value, and the stored session stays as it was."""

import math

import pytest
from django.core.cache import caches

from triggers import CacheStorageBackend, TriggerManager
from triggers.errors import (
    MAX_REPR,
    InstanceNotFailed,
    InvalidArgument,
    InvalidSessionUid,
    InvalidTaskConfig,
    StorageCorrupted,
    TriggersError,
    UnknownCache,
    UnknownInstance,
    UnknownStatus,
    UnknownTask,
    UnserializableValue,
    safe_repr,
)

from .conftest import cache_independent, locmem_in_each_layout
from .storage_support import (
    CONFIG,
    fresh,
    keys_of,
    populate,
    raw,
    sealed_head,
    stored_head,
    stored_value,
)

EXTRA_NAMES = ("nope#0", "t_report#0", "t_import#1", "t_score#2")


class Unchanged:
    """Reads every key of a session (and some it must not create) before and after."""

    def __init__(self, store, names=None):
        self.alias_cache = store.cache
        self.keys = keys_of(store, names) + [store.record_key(n) for n in EXTRA_NAMES]
        self.before = raw(self.alias_cache, self.keys)

    def check(self):
        assert raw(self.alias_cache, self.keys) == self.before


# --------------------------------------------------------------------------- unknown names


# Decided from the loaded name index; the kit refuses an unknown instance to update_instance_status on every cache.
@locmem_in_each_layout
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


# A number Python refuses to parse (over 4,300 digits) is a name like any other.
@locmem_in_each_layout
def test_an_instance_numbered_with_thousands_of_digits_is_unknown(stored_session, uid):
    name = "t_score#" + "1" * 5000
    unchanged = Unchanged(stored_session)
    manager = TriggerManager(fresh(stored_session))
    for call in (
        lambda: manager.update_instance_status(name, "finished"),
        lambda: manager.update_instance_metadata(name, {"x": 1}),
        lambda: fresh(stored_session)[name],
    ):
        with pytest.raises(UnknownInstance) as info:
            call()
        assert info.value.name == name and info.value.uid == uid
    unchanged.check()


# Decided from the loaded task table and name index; the kit refuses both unknown names on every cache.
@locmem_in_each_layout
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


# Decided from the loaded instance's status; the kit refuses skip/replay of an unstarted one on every cache.
@locmem_in_each_layout
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
    content = stored_head(any_cache, store)
    del content[part]
    head = sealed_head(content)
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
    content = stored_head(any_cache, store)
    content[part] = "garbage"
    head = sealed_head(content)
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
    assert stored_value(any_cache, key) is not None  # settled into its own key
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


# --------------------------------------------------------------------------- generated-input findings


class FailingRepr:
    def __repr__(self):
        raise RuntimeError("this __repr__ fails")


class NonStrRepr:
    def __repr__(self):
        return 42


def recursive_list():
    value = [1]
    value.append(value)
    return value


def nested(depth):
    value = "bottom"
    for _ in range(depth):
        value = [value]
    return value


@pytest.mark.parametrize(
    "value",
    [nested(10_000), FailingRepr(), NonStrRepr(), "x" * 1_000_000, 10**5000, {"k": [FailingRepr()] * 50}],
    ids=["10000-deep", "failing-repr", "non-str-repr", "huge-string", "huge-int", "wide"],
)
def test_error_messages_name_any_value_safely(value):
    """Building the message never raises (RecursionError, the __repr__'s own error) and stays short."""
    text = safe_repr(value)
    assert type(text) is str and 0 < len(text) <= MAX_REPR
    for error in (
        InvalidSessionUid(value, "bad"),
        InvalidTaskConfig(value, "bad"),
        UnknownInstance(value, "a-session"),
        UnknownTask(value, "a-session"),
        UnserializableValue("a value", value, ValueError("x" * 10_000)),
        InvalidArgument("argument", value, "bad"),
    ):
        message = str(error)
        assert type(message) is str and len(message) <= 2 * MAX_REPR
        assert text in message


@cache_independent
@pytest.mark.parametrize("value", [recursive_list(), nested(150)], ids=["recursive", "150-deep"])
def test_recursive_or_deep_values_are_unserializable(stored_session, value):
    """Pickle takes a value that contains itself, and one 150 deep, but copying or comparing them later fails."""
    unchanged = Unchanged(stored_session)
    manager = TriggerManager(fresh(stored_session))
    for call in (
        lambda: manager.fire("start", {"x": value}),
        lambda: manager.update_instance_metadata("t_import#0", {"x": value}),
        lambda: manager.replay_failed_instance("t_score#1", {"x": value}),
        lambda: manager.skip_failed_instance("t_score#1", result={"x": value}),
        lambda: manager.update_configuration({"t_new": {"after": ["a"], "run": "r", "withParams": {"x": value}}}),
    ):
        with pytest.raises(UnserializableValue) as info:
            call()
        assert len(str(info.value)) < 2 * MAX_REPR
    unchanged.check()


@cache_independent
def test_failing_repr_does_not_hide_the_error(stored_session):
    unchanged = Unchanged(stored_session)
    manager = TriggerManager(fresh(stored_session))
    with pytest.raises(InvalidArgument, match="FailingRepr") as info:
        manager.fire(FailingRepr())
    assert isinstance(info.value, ValueError)
    with pytest.raises(UnknownInstance, match="NonStrRepr"):
        manager.update_instance_status(NonStrRepr(), "finished")
    with pytest.raises(InvalidTaskConfig, match="FailingRepr"):
        manager.update_configuration({"t_new": {"after": ["a"], "run": FailingRepr()}})
    unchanged.check()


@cache_independent
@pytest.mark.parametrize("name", [["t_import#0"], {"t_import#0": 1}, {"t_import"}], ids=["list", "dict", "set"])
def test_unhashable_names(stored_session, uid, name):
    unchanged = Unchanged(stored_session)
    manager = TriggerManager(fresh(stored_session))
    for call in (
        lambda: manager.update_instance_status(name, "finished"),
        lambda: manager.update_instance_metadata(name, {"x": 1}),
        lambda: manager.mark_instance_logs_resolved(name),
        lambda: manager.replay_failed_instance(name),
        lambda: manager.skip_failed_instance(name),
        lambda: stored_session[name],
        lambda: stored_session.get_instance(name),
    ):
        with pytest.raises(UnknownInstance) as info:
            call()
        assert isinstance(info.value, KeyError)
        assert safe_repr(name) in str(info.value) and uid in str(info.value)
    for call in (lambda: stored_session.get_task(name), lambda: stored_session.instances_of_task(name)):
        with pytest.raises(UnknownTask):
            call()
    with pytest.raises(InvalidArgument, match="trigger name"):
        manager.fire(name)
    unchanged.check()


@cache_independent
@pytest.mark.parametrize("status", [["finished"], {}, {"failed"}, "", 3], ids=["list", "dict", "set", "empty", "int"])
def test_unhashable_or_non_str_status(stored_session, status):
    unchanged = Unchanged(stored_session)
    with pytest.raises(UnknownStatus) as info:
        TriggerManager(fresh(stored_session)).update_instance_status("t_import#0", status)
    assert isinstance(info.value, ValueError)
    assert f"unknown status {safe_repr(status)}" in str(info.value)
    with pytest.raises(UnknownStatus):
        with stored_session.acquire_lock():
            stored_session.create_instance("t_report", status=status)
    unchanged.check()


# Refused by check_configuration before any read or write; pickling a save on every cache is tested below.
@cache_independent
@pytest.mark.parametrize("key", ["description", "withParams"])
def test_unpicklable_value_in_a_definition(stored_session, uid, key):
    """Under a key the package does not know (kept as it is) or in withParams; on a stored session and a new one."""
    unchanged = Unchanged(stored_session)
    definition = {"after": ["a"], "run": "r", key: {"callback": lambda: 1}}
    for store in (fresh(stored_session), CacheStorageBackend(uid + "-new", cache=stored_session.cache)):
        with pytest.raises(UnserializableValue, match="t_new"):
            TriggerManager(store).update_configuration({"t_new": definition})
        with pytest.raises(UnserializableValue):
            with store.acquire_lock():
                store.update_configuration({"t_new": definition})
    unchanged.check()
    assert stored_session.cache.get(CacheStorageBackend(uid + "-new", cache=stored_session.cache).cache_key) is None


@cache_independent
@pytest.mark.parametrize("result", [[1, 2], "done", 7, ("a", 1)], ids=["list", "str", "int", "tuple"])
def test_skip_result_that_is_not_a_dict(stored_session, result):
    unchanged = Unchanged(stored_session)
    with pytest.raises(InvalidArgument, match="skip result") as info:
        TriggerManager(fresh(stored_session)).skip_failed_instance("t_score#1", cascade=True, result=result)
    assert isinstance(info.value, TypeError)
    assert safe_repr(result) in str(info.value)
    unchanged.check()
    assert fresh(stored_session)["t_score#1"].status == "failed"


@pytest.mark.parametrize("uid", ["a\ud800", "\udfff", "ok\ud83dz"])
def test_uid_with_a_lone_surrogate(uid):
    with pytest.raises(InvalidSessionUid, match="surrogate") as info:
        CacheStorageBackend(uid)
    assert info.value.uid == uid


@cache_independent
def test_names_with_a_lone_surrogate(stored_session):
    unchanged = Unchanged(stored_session)
    manager = TriggerManager(fresh(stored_session))
    with pytest.raises(InvalidArgument):
        manager.fire("start\ud800")
    with pytest.raises(InvalidTaskConfig):
        manager.update_configuration({"t\ud800": {"after": ["a"], "run": "r"}})
    with pytest.raises(InvalidTaskConfig):
        manager.update_configuration({"t_new": {"after": ["a\udc00"], "run": "r"}})
    with pytest.raises(UnknownInstance):
        manager.update_instance_status("t_import#0\ud800", "finished")
    unchanged.check()


@pytest.mark.parametrize(
    "kwargs, error",
    [
        ({"timeout": math.nan}, InvalidArgument),
        ({"timeout": math.inf}, InvalidArgument),
        ({"timeout": True}, InvalidArgument),
        ({"layout": ["split"]}, InvalidArgument),
        ({"cache": 5}, InvalidArgument),
        ({"cache": "no-such-alias"}, UnknownCache),
    ],
    ids=["nan", "inf", "bool", "layout-list", "cache-int", "unknown-alias"],
)
def test_bad_storage_arguments(uid, kwargs, error):
    with pytest.raises(error) as info:
        CacheStorageBackend(uid, **kwargs)
    assert isinstance(info.value, TriggersError) and isinstance(info.value, ValueError)
    assert safe_repr(next(iter(kwargs.values()))) in str(info.value)


@cache_independent
def test_bad_manager_arguments(stored_session):
    unchanged = Unchanged(stored_session)
    with pytest.raises(InvalidArgument) as info:
        TriggerManager("not a storage")
    assert isinstance(info.value, TypeError)
    manager = TriggerManager(fresh(stored_session))
    with pytest.raises(InstanceNotFailed, match="only failed instances") as not_failed:
        manager.skip_failed_instance("t_import#0")
    assert isinstance(not_failed.value, ValueError)
    with pytest.raises(InvalidArgument, match="timestamps"):
        manager.update_instance_metadata("t_import#0", {"timestamps": 5})
    with pytest.raises(InvalidArgument, match="depth"):
        manager.replay_failed_instance("t_score#1", metadata={"depth": "deep"})
    with pytest.raises(InvalidArgument, match="cascade"):
        manager.skip_failed_instance("t_score#1", cascade="yes")
    with pytest.raises(InvalidArgument, match="keyword"):
        with stored_session.acquire_lock():
            stored_session.create_instance("t_report", bogus=None)
    unchanged.check()


def test_unpicklable_metadata_written_through_the_storage_writes_nothing(stored_session):
    """Checked before the save makes any write (a plain cache writes its keys one by one)."""
    unchanged = Unchanged(stored_session)

    class Opaque:
        def __reduce__(self):
            raise RuntimeError("refuses to be pickled")

    with pytest.raises(UnserializableValue, match="metadata"):
        with stored_session.acquire_lock():
            stored_session.metadata["x"] = Opaque()
            stored_session.save()
    unchanged.check()


class _RefusesPickling:
    """A value whose pickling fails with an error of its own, not a pickling error."""

    def __reduce__(self):
        raise RuntimeError("this object cannot be saved")


def test_a_value_whose_pickling_raises_its_own_error(stored_session):
    """On every cache and in both layouts: UnserializableValue, and the session as it was."""
    before = fresh(stored_session).debug_repr()
    with pytest.raises(UnserializableValue) as info:
        with stored_session.acquire_lock():
            stored_session["t_score#0"].metadata["result"] = {"odd": _RefusesPickling()}
            stored_session.save()
    assert "cannot be saved" in str(info.value)
    assert fresh(stored_session).debug_repr() == before
