"""Generated bad and odd input against every public method of the manager and the storage.

The property, for each call: it succeeds, or it raises an error of this
package (a ``TriggersError``, never anything else) whose message is a
bounded str; when it raises, every raw value the session keeps in the cache
is byte-identical to before; when it succeeds, the session still reads.

Set ``TRIGGERS_TALLY=1`` to count untyped errors instead of failing on the
first (the counts are printed at the end of the module, run with ``-s``).
"""

from __future__ import annotations

import math
import os
import pickle
import uuid
from collections import Counter
from collections.abc import Callable
from typing import Any

import pytest
from django.core.cache import caches
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.conftest import prepare_cache
from tests.storage_support import fresh, keys_of, populate, tasks_version
from triggers import CacheStorageBackend, TriggerManager
from triggers.errors import TriggersError
from triggers.types import TaskConfig, TaskInstance

#: longest message an error may have, whatever the input
MAX_MESSAGE = 2000
#: examples per property: the bulk on LocMem, fewer on the shared caches
EXAMPLES = {"locmem": 400, "redis": 50, "memcached": 50, "db_sqlite": 30}
TALLY_ONLY = os.environ.get("TRIGGERS_TALLY") == "1"
TALLY: Counter[str] = Counter()
UNTYPED: Counter[str] = Counter()

# --------------------------------------------------------------------------- odd objects


class BadRepr:
    def __repr__(self) -> str:
        raise RuntimeError("this __repr__ fails")


class NonStrRepr:
    def __repr__(self) -> Any:
        return 42


class BadReduce:
    def __reduce__(self) -> Any:
        raise RuntimeError("this __reduce__ fails")


class BadHash:
    def __hash__(self) -> int:
        raise RuntimeError("this __hash__ fails")

    def __eq__(self, other: object) -> bool:
        raise RuntimeError("this __eq__ fails")


class BadMapping(dict):
    """A dict whose items cannot be read."""

    def keys(self) -> Any:
        raise RuntimeError("these keys fail")

    def __iter__(self) -> Any:
        raise RuntimeError("this iteration fails")


def recursive_list() -> list[Any]:
    value: list[Any] = [1]
    value.append(value)
    return value


def recursive_dict() -> dict[str, Any]:
    value: dict[str, Any] = {"a": 1}
    value["self"] = value
    return value


def deep(depth: int, kind: str = "list") -> Any:
    value: Any = "bottom"
    for _ in range(depth):
        value = [value] if kind == "list" else {"k": value}
    return value


FACTORIES: dict[str, Callable[[], Any]] = {
    "BadRepr": BadRepr,
    "NonStrRepr": NonStrRepr,
    "BadReduce": BadReduce,
    "BadHash": BadHash,
    "BadMapping": lambda: BadMapping(a=1),
    "recursive_list": recursive_list,
    "recursive_dict": recursive_dict,
    "deep_list_10000": lambda: deep(10_000),
    "deep_dict_10000": lambda: deep(10_000, "dict"),
    "deep_list_600": lambda: deep(600),
    "deep_dict_600": lambda: deep(600, "dict"),
    "lambda": lambda: (lambda: 1),
    "object": object,
    "huge_str": lambda: "x" * 200_000,
    "huge_bytes": lambda: b"\x00\xff" * 1000,
    "dict_with_lambda": lambda: {"k": lambda: 1},
    "dict_with_bad_reduce": lambda: {"withParams": BadReduce()},
    "instance_named_a_list": lambda: TaskInstance(["t_import#0"], TaskConfig("t", after=["a"], run="r")),  # type: ignore[arg-type]
    "instance_not_in_session": lambda: TaskInstance("t_other#0", TaskConfig("t_other", after=["a"], run="r")),
    "config_of_a_task": lambda: TaskConfig("t_import", after=["start"], run="r"),
    "config_of_another_task": lambda: TaskConfig("t_other", after=["a"], run="r"),
}


class Make:
    """Stands for an odd object in what hypothesis draws and prints; built by ``materialize``.

    (Hypothesis prints the examples it draws: the odd objects themselves
    would break its printer.)
    """

    def __init__(self, name: str) -> None:
        self.name = name

    def __repr__(self) -> str:
        return f"<{self.name}>"


def materialize(value: Any) -> Any:
    """``value`` with each Make in it (in lists, tuples, dict values) replaced by a new odd object."""
    if isinstance(value, Make):
        return FACTORIES[value.name]()
    if isinstance(value, list):
        return [materialize(item) for item in value]
    if isinstance(value, tuple):
        return tuple(materialize(item) for item in value)
    if isinstance(value, dict):
        return {key: materialize(item) for key, item in value.items()}
    return value


odd_objects = st.sampled_from(sorted(FACTORIES)).map(Make)
odd_strings = st.sampled_from(
    ["", " ", "a b", "a\ud800", "\udfff", "\x00", "a\nb", "\x1b[0m", "\u00a0", "#", "t_import#",
     "t_import#-1", "t_import#01", "t_import#99", "t_score#1\x00", "x" * 300, "\U0001f600"]
) | st.text(max_size=12)
scalars = (
    st.none() | st.booleans() | st.integers() | st.binary(max_size=8)
    | st.floats(allow_nan=True, allow_infinity=True) | st.just(math.nan) | st.just(math.inf)
)
odd_values = st.recursive(
    scalars | odd_strings | odd_objects,
    lambda inner: st.lists(inner, max_size=3) | st.tuples(inner) | st.dictionaries(st.text(max_size=4), inner, max_size=3),
    max_leaves=6,
)
#: names of what the populated session holds, and everything a name should not be
names = st.sampled_from(
    ["t_import#0", "t_score#0", "t_score#1", "t_report#0", "t_import", "t_score", "t_report"]
) | odd_strings | odd_values
statuses = st.sampled_from(["finished", "failed", "running", "skipped", "unstarted"]) | names
mappings = (
    st.dictionaries(st.text(max_size=6) | st.integers(), odd_values, max_size=3)
    | st.dictionaries(st.sampled_from(["timestamps", "depth", "logLevel", "cooldown", "parent"]), odd_values, max_size=2)
    | odd_values
)
optional_mappings = st.none() | mappings
definitions = st.fixed_dictionaries(
    {"after": st.lists(st.sampled_from(["a", "start"]) | odd_strings, max_size=2) | odd_values,
     "run": st.just("r") | odd_strings | odd_values},
    optional={"unless": odd_values, "using": odd_strings | odd_values, "withParams": mappings,
              "andEvery": odd_strings | odd_values, "description": odd_values, "name": odd_values},
) | odd_values
hashable_odd = scalars | odd_strings | st.tuples(st.integers() | odd_strings)
configs = st.dictionaries(st.sampled_from(["t_new", "t_import"]) | hashable_odd, definitions, max_size=2) | odd_values
flags = st.booleans() | odd_values

# --------------------------------------------------------------------------- the property


def raw_state(store: CacheStorageBackend) -> dict[str, bytes]:
    """Every raw value the session keeps (head, witness, records, task table), pickled."""
    reader = fresh(store)
    names = list(reader.instances) + ["t_import#1", "t_score#2", "t_report#0", "t_report#1"]
    keys = keys_of(store, names)
    version = tasks_version(store.cache, store)
    if version is not None:
        keys.append(store.tasks_key(version))
    values = store.cache.get_many(keys)
    return {key: pickle.dumps(values[key], 4) for key in sorted(values)}


def check_call(label: str, store: CacheStorageBackend, call: Callable[[], Any]) -> None:
    """The property for one call of ``label`` on the session of ``store``."""
    before = raw_state(store)
    TALLY[label] += 1
    try:
        call()
    except TriggersError as exc:
        message = str(exc)
        problems = []
        if type(message) is not str or len(message) > MAX_MESSAGE:
            problems.append(f"{label}: {type(exc).__name__} with a message of {len(message)} chars")
        if raw_state(store) != before:
            problems.append(f"{label}: {type(exc).__name__}, and the session changed")
        if problems and not TALLY_ONLY:
            raise AssertionError("; ".join(problems)) from exc
        UNTYPED.update(problems)
        return
    except Exception as exc:
        if not TALLY_ONLY:
            raise AssertionError(f"{label} raised an untyped {type(exc).__name__}") from exc
        UNTYPED[f"{label}: {type(exc).__name__}"] += 1
        return
    try:  # a call that succeeded left a session that still reads
        reader = fresh(store)
        reader.debug_repr()
        reader.get_unresolved_tasks()
    except Exception as exc:
        if not TALLY_ONLY:
            raise AssertionError(f"{label} succeeded but left a session that fails to read") from exc
        UNTYPED[f"{label} (then reading): {type(exc).__name__}"] += 1


@pytest.fixture(params=list(EXAMPLES))
def alias(request):
    return prepare_cache(request, request.param)


@pytest.fixture(scope="module", autouse=True)
def report_tally():
    yield
    print(f"\ncalls tried: {sum(TALLY.values())}, untyped errors: {sum(UNTYPED.values())}")
    for what, count in UNTYPED.most_common():
        print(f"  {count:5d}  {what}")


def run_property(alias: str, strategy: st.SearchStrategy[Any], body: Callable[[CacheStorageBackend, Any], None]) -> None:
    """Run ``body`` on a new populated session of ``alias`` for each example of ``strategy``."""

    @settings(
        max_examples=EXAMPLES[alias],
        deadline=None,
        database=None,
        suppress_health_check=list(HealthCheck),
    )
    @given(strategy)
    def examples(value: Any) -> None:
        store = populate(CacheStorageBackend("gen-" + uuid.uuid4().hex, cache=alias))
        try:
            body(fresh(store), materialize(value))
        finally:
            caches[alias].delete_many(raw_keys(store))

    examples()


def raw_keys(store: CacheStorageBackend) -> list[str]:
    names = ["t_import#0", "t_import#1", "t_score#0", "t_score#1", "t_score#2", "t_report#0", "t_report#1"]
    return [*keys_of(store, names), store.keys.lock]


def locked(store: CacheStorageBackend, change: Callable[[], Any]) -> Callable[[], None]:
    """``change`` then a save, under the session's lock."""

    def call() -> None:
        with store.acquire_lock(ttl=30):
            change()
            store.save()

    return call


# --------------------------------------------------------------------------- the manager


def test_constructors(alias):
    def body(store, value):
        check_call("TriggerManager()", store, lambda: TriggerManager(value))
        check_call("CacheStorageBackend(uid)", store, lambda: CacheStorageBackend(value, cache=alias))
        check_call("CacheStorageBackend(cache)", store, lambda: CacheStorageBackend(store.uid, cache=value))
        check_call("CacheStorageBackend(timeout)", store, lambda: CacheStorageBackend(store.uid, cache=alias, timeout=value))
        check_call("CacheStorageBackend(layout)", store, lambda: CacheStorageBackend(store.uid, cache=alias, layout=value))

    run_property(alias, names | st.floats() | st.just(-1) | st.just(True), body)


def test_fire(alias):
    def body(store, value):
        name, kwargs = value
        check_call("fire", store, lambda: TriggerManager(store).fire(name, kwargs))

    run_property(alias, st.tuples(st.sampled_from(["start", "upload", "cancel"]) | names, optional_mappings), body)


def test_update_configuration(alias):
    def body(store, config):
        check_call("update_configuration", store, lambda: TriggerManager(store).update_configuration(config))

    run_property(alias, configs, body)


def test_update_instance_status(alias):
    def body(store, value):
        name, status, metadata, cascade, cascade_kwargs = value
        check_call(
            "update_instance_status",
            store,
            lambda: TriggerManager(store).update_instance_status(name, status, metadata, cascade, cascade_kwargs),
        )

    run_property(alias, st.tuples(names, statuses, optional_mappings, flags, optional_mappings), body)


def test_instance_metadata_and_logs(alias):
    def body(store, value):
        name, metadata = value
        manager = TriggerManager(store)
        check_call("update_instance_metadata", store, lambda: manager.update_instance_metadata(name, metadata))
        check_call("mark_instance_logs_resolved", store, lambda: manager.mark_instance_logs_resolved(name))

    run_property(alias, st.tuples(names, mappings), body)


def test_replay_and_skip(alias):
    def body(store, value):
        name, kwargs, metadata, cascade, result = value
        manager = TriggerManager(store)
        check_call("replay_failed_instance", store, lambda: manager.replay_failed_instance(name, kwargs, metadata=metadata))
        check_call("skip_failed_instance", store, lambda: manager.skip_failed_instance(name, cascade, result))

    run_property(
        alias, st.tuples(st.just("t_score#1") | names, optional_mappings, optional_mappings, flags, optional_mappings), body
    )


# --------------------------------------------------------------------------- the storage


def test_storage_queries(alias):
    def body(store, name):
        check_call("get_task", store, lambda: store.get_task(name))
        check_call("get_instance", store, lambda: store.get_instance(name))
        check_call("__getitem__", store, lambda: store[name])
        check_call("instances_of_task", store, lambda: store.instances_of_task(name))
        check_call("clone_instance", store, locked(store, lambda: store.clone_instance(name)))

    run_property(alias, names, body)


def test_storage_changes(alias):
    def body(store, value):
        task, kwargs, config, key, item = value
        check_call("storage.update_configuration", store, locked(store, lambda: store.update_configuration(config)))
        check_call("create_instance", store, locked(store, lambda: store.create_instance(task, **kwargs)))
        check_call("metadata[...] =", store, locked(store, lambda: store.metadata.__setitem__(key, item)))
        check_call("latest_kwargs[...] =", store, locked(store, lambda: store.latest_kwargs.__setitem__(key, item)))
        check_call(
            "instance.kwargs[...] =", store, locked(store, lambda: store["t_import#0"].kwargs.__setitem__(key, item))
        )
        check_call(
            "instance.metadata[...] =", store, locked(store, lambda: store["t_score#1"].metadata.__setitem__(key, item))
        )

    create_kwargs = st.fixed_dictionaries(
        {}, optional={"kwargs": optional_mappings, "metadata": optional_mappings, "status": statuses, "abandonState": odd_values}
    ) | st.dictionaries(st.sampled_from(["bogus", "name", "config"]), odd_values, max_size=1)
    run_property(
        alias,
        st.tuples(st.sampled_from(["t_report", "t_import"]) | names, create_kwargs, configs, st.text(max_size=4), odd_values),
        body,
    )
