"""Bad input to the database backend: the cache backend's typed error, every table byte for byte as it was."""

import math

import pytest

from triggers import CacheStorageBackend, TriggerManager
from triggers.errors import InvalidArgument, InvalidTaskConfig, TriggersError
from triggers.models import Configuration, Instance, Session, TaskDefinition
from triggers.storages.database import DatabaseStorageBackend

CONFIG = {
    "a": {"after": ["go"], "run": "tests.add", "using": "tests-recording"},
    "b": {"after": ["a", "never"], "run": "tests.add"},
}


def table_dump(alias):
    """Every row of the backend's tables, values as stored (bytes for the pickles)."""
    dump = {}
    for model in (Configuration, TaskDefinition, Session, Instance):
        rows = model.objects.using(alias).order_by("pk").values()
        dump[model.__name__] = [
            {k: bytes(v) if isinstance(v, memoryview) else v for k, v in row.items()} for row in rows
        ]
    return dump


class Unhashable:
    __hash__ = None


class Unpicklable:
    def __reduce__(self):
        raise TypeError("no pickling this")


def _nested(depth):
    value = {}
    for _ in range(depth):
        value = {"x": value}
    return value


# (what, the call on a manager)
BAD_CALLS = [
    ("fire: not a trigger name", lambda m: m.fire(42)),
    ("fire: empty trigger name", lambda m: m.fire("")),
    ("fire: kwargs not a mapping", lambda m: m.fire("go", ["x"])),
    ("fire: unpicklable kwargs", lambda m: m.fire("go", {"x": Unpicklable()})),
    ("fire: self-containing kwargs", lambda m: m.fire("go", (lambda d: d.update(me=d) or d)({}))),
    ("fire: too deep kwargs", lambda m: m.fire("go", _nested(200))),
    ("fire: nan is fine, a lone surrogate name is not", lambda m: m.fire("\udc80", {"n": math.nan})),
    ("config: not a mapping", lambda m: m.update_configuration(["a"])),
    ("config: after not a list", lambda m: m.update_configuration({"c": {"after": "go", "run": "x"}})),
    ("config: no run", lambda m: m.update_configuration({"c": {"after": ["go"]}})),
    ("config: unhashable trigger", lambda m: m.update_configuration({"c": {"after": [Unhashable()], "run": "x"}})),
    ("status: unknown", lambda m: m.update_instance_status("a#0", "nearly-done")),
    ("status: unknown instance", lambda m: m.update_instance_status("zz#0", "finished")),
    ("replay: not failed", lambda m: m.replay_failed_instance("a#0")),
    ("skip: not failed", lambda m: m.skip_failed_instance("a#0")),
    ("metadata: unpicklable", lambda m: m.update_instance_metadata("a#0", {"x": Unpicklable()})),
    ("metadata: not a mapping", lambda m: m.update_instance_metadata("a#0", 7)),
]


def _error_on(manager, call):
    with pytest.raises(Exception) as info:
        call(manager)
    return info.value


@pytest.mark.parametrize("what, call", BAD_CALLS, ids=[w for w, _ in BAD_CALLS])
def test_the_same_typed_error_as_the_cache_backend_and_nothing_changes(
    database, uid, what, call, test_runners
):
    cache_manager = TriggerManager(CacheStorageBackend(uid, cache="locmem"))
    db_manager = TriggerManager(DatabaseStorageBackend(uid, using=database))
    for manager in (cache_manager, db_manager):
        manager.update_configuration(CONFIG)
        manager.fire("go", {"n": 1})
    before = table_dump(database)
    expected = _error_on(cache_manager, call)
    error = _error_on(TriggerManager(DatabaseStorageBackend(uid, using=database)), call)
    assert type(error) is type(expected), (error, expected)
    assert isinstance(error, TriggersError)
    assert table_dump(database) == before


@pytest.mark.parametrize(
    "name, reason",
    [("t" * 300, "longer than"), ("nul\x00name", "NUL")],
)
def test_task_names_the_tables_cannot_hold_are_refused_before_any_write(database, uid, name, reason):
    manager = TriggerManager(DatabaseStorageBackend(uid, using=database))
    manager.update_configuration(CONFIG)
    before = table_dump(database)
    with pytest.raises(InvalidTaskConfig, match=reason):
        manager.update_configuration({name: {"after": ["go"], "run": "tests.add"}})
    assert table_dump(database) == before


@pytest.mark.parametrize("using", ["nope", 3, ""])
def test_an_unknown_database_alias_is_refused(using):
    with pytest.raises(InvalidArgument, match="using"):
        DatabaseStorageBackend("u", using=using)


@pytest.mark.parametrize("uid_", ["", " x", "a\nb", "x" * 151, 7])
def test_bad_uids_are_refused_as_on_the_cache(uid_):
    with pytest.raises(TriggersError) as cache_error:
        CacheStorageBackend(uid_, cache="locmem")
    with pytest.raises(TriggersError) as db_error:
        DatabaseStorageBackend(uid_)
    assert type(db_error.value) is type(cache_error.value)


def test_hostile_values_round_trip(database, uid):
    hostile = {
        "html": "<script>alert(1)</script>",
        "escape": "\x1b[31mred\x1b[0m",
        "braces": "{uid}:{lock}",
        "nul": "a\x00b",
        "bytes": b"\x00\xff",
        "big": 10**40,
        "set": {1, 2},
        "nan": math.inf,
    }
    manager = TriggerManager(DatabaseStorageBackend(uid, using=database))
    manager.update_configuration({"t:{x}\x1b": {"after": ["go", "never"], "run": "tests.add"}})
    manager.fire("go", hostile)
    store = DatabaseStorageBackend(uid, using=database)
    assert store.latest_kwargs["go"] == hostile
    assert store["t:{x}\x1b#0"].kwargs["go"] == hostile


def test_an_instance_row_deleted_by_hand_is_named_not_read_as_a_smaller_session(database, uid):
    from triggers.errors import StorageCorrupted

    manager = TriggerManager(DatabaseStorageBackend(uid, using=database))
    manager.update_configuration({"t": {"after": ["never"], "andEvery": "tick", "run": "tests.add"}})
    for n in range(3):
        manager.fire("tick", {"n": n})
    Instance.objects.using(database).filter(session__uid=uid, name="t#1").delete()
    with pytest.raises(StorageCorrupted, match="t#1"):
        list(DatabaseStorageBackend(uid, using=database).iter_instances())
    with pytest.raises(StorageCorrupted, match="t#1"):
        TriggerManager(DatabaseStorageBackend(uid, using=database)).update_instance_status("t#1", "skipped")
    # The operator's way out: delete the session; its uid starts over.
    assert DatabaseStorageBackend(uid, using=database).delete()
    assert DatabaseStorageBackend(uid, using=database).stored_nothing()
