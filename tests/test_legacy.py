"""Sessions stored by Triggers 2.x load and continue, and the "single" layout writes them back."""

import copy
from datetime import datetime

import pytest
from django.core.cache import caches

from triggers import CacheStorageBackend, TriggerManager

from .legacy_2x import load_like_2x
from .storage_support import assert_plain

T0 = datetime(2019, 3, 4, 10, 0, 0)  # naive UTC, as 2.x stored them
T1 = datetime(2019, 3, 4, 10, 0, 5, 123456)
T2 = datetime(2019, 3, 4, 10, 1, 0)


def legacy_session():
    """A session as Triggers 2.x left it in the cache."""
    return {
        "tasks": {
            "t_importSubject": {
                "after": ["sessionStarted"],
                "andEvery": None,
                "run": "import_subject",
                "unless": [],
                "using": None,
                "withParams": {},
            },
            "t_scorePage": {
                "after": ["pageSaved", "t_importSubject"],
                "andEvery": "pageSaved",
                "run": "score_page",
                "unless": ["sessionCancelled"],
                "using": "celery",
                "withParams": {"scale": {"max": 10}},
                "description": "a key 3.0 does not know",
            },
            "t_finalize": {
                "after": ["sessionFinished", "t_scorePage"],
                "andEvery": None,
                "run": "finalize",
                "unless": ["sessionCancelled"],
                "using": None,
                "withParams": {},
            },
        },
        "instances": {
            "t_importSubject#0": {
                "abandonState": [],
                "kwargs": {"sessionStarted": {"subject_id": 1234}},
                "metadata": {
                    "timestamps": {"created": T0, "scheduled": T0, "running": T1, "finished": T1, "lastModified": T1},
                    "actualKwargs": {"sessionStarted": {"subject_id": 1234}},
                    "result": {"name": "Ada"},
                    "logLevel": 20,
                },
                "status": "finished",
                "task": "t_importSubject",
            },
            "t_scorePage#0": {
                "abandonState": [],
                "kwargs": {"t_importSubject": {"name": "Ada"}, "pageSaved": {"page": 1}},
                "metadata": {
                    "timestamps": {"created": T1, "finished": T2, "lastModified": T2},
                    "result": {"score": 7},
                },
                "status": "finished",
                "task": "t_scorePage",
            },
            "t_scorePage#1": {
                "abandonState": [],
                "kwargs": {"t_importSubject": {"name": "Ada"}, "pageSaved": {"page": 2}},
                "metadata": {
                    "timestamps": {"created": T2, "failed": T2, "lastModified": T2},
                    "exceptionType": "builtins.ValueError",
                    "exceptionInfo": "Traceback (most recent call last): ...",
                    "exceptionContext": {},
                    "logLevel": 40,
                },
                "status": "failed",
                "task": "t_scorePage",
            },
            "t_finalize#0": {
                "abandonState": [],
                "kwargs": {"t_scorePage": {"score": 7}},
                "metadata": {"timestamps": {"created": T2}},
                "status": "unstarted",
                "task": "t_finalize",
            },
        },
        "metas": {
            "latest_kwargs": {
                "sessionStarted": {"subject_id": 1234},
                "t_importSubject": {"name": "Ada"},
                "pageSaved": {"page": 2},
                "t_scorePage": {"score": 7},
            }
        },
    }


def store_legacy(alias, uid):
    caches[alias].set("triggers.storages.cache:" + uid, legacy_session(), timeout=None)


def parse_like_2x(value):
    """What a Triggers 2.x reader needs from the single cache value."""
    assert isinstance(value, dict)
    assert set(value) == {"tasks", "instances", "metas"}
    assert_plain(value)
    for name, task in value["tasks"].items():
        assert isinstance(task["after"], list) and isinstance(task["run"], str), name
        assert isinstance(task.get("unless", []), list)
        assert isinstance(task.get("withParams", {}), dict)
    for name, instance in value["instances"].items():
        assert set(instance) == {"abandonState", "kwargs", "metadata", "status", "task"}, name
        assert instance["task"] in value["tasks"]
        assert isinstance(instance["abandonState"], list)
        assert name.startswith(instance["task"] + "#")
    assert isinstance(value["metas"]["latest_kwargs"], dict)
    return value


def test_a_2x_session_loads(any_cache, uid):
    store_legacy(any_cache, uid)
    store = CacheStorageBackend(uid, cache=any_cache)
    legacy = legacy_session()
    assert store.debug_repr() == legacy
    score = store.tasks["t_scorePage"]
    assert score.and_every == "pageSaved"
    assert score.using == "celery"
    assert score.extra == {"description": "a key 3.0 does not know"}
    failed = store["t_scorePage#1"]
    assert failed.can_replay
    assert not failed.logs_resolved
    assert store["t_importSubject#0"].last_modified == T1
    assert {i.name for i in store.get_unresolved_instances()} == {"t_scorePage#1", "t_finalize#0"}
    assert {t.name for t in store.get_unresolved_tasks()} == {"t_scorePage", "t_finalize"}
    assert store.latest_kwargs == legacy["metas"]["latest_kwargs"]


@pytest.mark.parametrize("layout", ["split", "single"])
def test_a_2x_session_continues(any_cache, uid, layout):
    store_legacy(any_cache, uid)
    manager = TriggerManager(CacheStorageBackend(uid, cache=any_cache, layout=layout))

    manager.update_configuration({"t_audit": {"after": ["auditRequested", "auditorAssigned"], "run": "audit"}})
    manager.fire("auditRequested", {"by": "ops"})
    manager.skip_failed_instance("t_scorePage#1")
    manager.mark_instance_logs_resolved("t_scorePage#1")
    manager.fire("sessionCancelled", {"reason": "user"})

    store = CacheStorageBackend(uid, cache=any_cache)
    legacy = legacy_session()
    state = store.debug_repr()

    # Untouched instances keep their data exactly, datetimes included.
    for name in ("t_importSubject#0", "t_scorePage#0"):
        assert state["instances"][name] == legacy["instances"][name]
    # Changed ones keep what they had and gain what happened.
    skipped = state["instances"]["t_scorePage#1"]
    assert skipped["status"] == "skipped"
    assert skipped["kwargs"] == legacy["instances"]["t_scorePage#1"]["kwargs"]
    assert skipped["metadata"]["exceptionType"] == "builtins.ValueError"
    assert skipped["metadata"]["logsResolved"] is True
    assert skipped["metadata"]["timestamps"]["created"] == T2
    assert isinstance(skipped["metadata"]["timestamps"]["skipped"], datetime)
    finalize = state["instances"]["t_finalize#0"]
    assert finalize["status"] == "abandoned"
    assert finalize["kwargs"] == {"t_scorePage": {"score": 7}}
    assert finalize["abandonState"] == ["sessionCancelled"]
    assert finalize["metadata"]["timestamps"]["created"] == T2
    assert state["instances"]["t_audit#0"]["kwargs"] == {"auditRequested": {"by": "ops"}}
    assert state["instances"]["t_audit#0"]["status"] == "unstarted"
    # Tasks: the old ones as they were, the new one added.
    assert {k: v for k, v in state["tasks"].items() if k != "t_audit"} == legacy["tasks"]
    assert state["metas"]["latest_kwargs"] == {
        **legacy["metas"]["latest_kwargs"],
        "auditRequested": {"by": "ops"},
        "sessionCancelled": {"reason": "user"},
    }
    assert_plain(state)  # new timestamps are naive too

    raw = caches[any_cache].get("triggers.storages.cache:" + uid)
    if layout == "single":
        assert parse_like_2x(raw) == state
    else:
        # Now split: a 2.x reader fails on it (before it could save anything).
        with pytest.raises(TypeError):
            load_like_2x(raw)

    # Written back as 2.x: a later save in the single layout restores the 2.x value.
    store = CacheStorageBackend(uid, cache=any_cache, layout="single")
    with store.acquire_lock():
        store.tasks  # load
        store.save()
    assert parse_like_2x(caches[any_cache].get("triggers.storages.cache:" + uid)) == state


def test_a_2x_session_without_latest_kwargs(any_cache, uid):
    session = legacy_session()
    session["metas"] = {}
    caches[any_cache].set("triggers.storages.cache:" + uid, session)
    store = CacheStorageBackend(uid, cache=any_cache, layout="single")
    assert store.latest_kwargs == {}
    with store.acquire_lock():
        store.latest_kwargs["x"] = {}
        store.save()
    value = parse_like_2x(caches[any_cache].get(store.cache_key))
    assert value["metas"] == {"latest_kwargs": {"x": {}}}


def test_an_empty_2x_session(any_cache, uid):
    caches[any_cache].set("triggers.storages.cache:" + uid, {"tasks": {}, "instances": {}, "metas": {}})
    manager = TriggerManager(CacheStorageBackend(uid, cache=any_cache, layout="single"))
    manager.update_configuration({"t": {"after": ["a", "b"], "run": "r"}})
    manager.fire("a", {"n": 1})
    value = parse_like_2x(caches[any_cache].get("triggers.storages.cache:" + uid))
    assert value["instances"]["t#0"]["kwargs"] == {"a": {"n": 1}}
    assert value["tasks"]["t"]["after"] == ["a", "b"]
    assert copy.deepcopy(value) == CacheStorageBackend(uid, cache=any_cache).debug_repr()
