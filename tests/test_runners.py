"""Task runners: the registry, the payload, and the threading and synchronous runners."""

from __future__ import annotations

import os
import subprocess
import sys
import threading
import warnings
from pathlib import Path

import pytest

from tests.runner_support import (
    EVENTS,
    RecordingRunner,
    behave,
    load_example,
    statuses,
)
from tests.storage_support import fresh
from triggers import CacheStorageBackend, TriggerManager
from triggers.registry import registry_key
from triggers.task import task
from triggers.tasks.runners import (
    DEFAULT_TASK_RUNNER,
    BaseTaskRunner,
    SynchronousTaskRunner,
    ThreadingTaskRunner,
    merge_kwargs,
    task_runners,
)
from triggers.types import TaskInstance

# The fixtures manager_session, test_runners and no_stray_threads.

ROOT = Path(__file__).resolve().parent.parent


# --------------------------------------------------------------------------- registry


def test_the_package_registers_its_runners():
    assert DEFAULT_TASK_RUNNER == "threading"
    assert task_runners.get_class("threading") is ThreadingTaskRunner
    assert task_runners.get_class("sync") is SynchronousTaskRunner
    assert isinstance(task_runners.get("threading"), ThreadingTaskRunner)
    assert registry_key(ThreadingTaskRunner) == ThreadingTaskRunner.name == "threading"
    assert registry_key(SynchronousTaskRunner) == SynchronousTaskRunner.name == "sync"
    # Made directly, a runner carries the same brand.
    assert registry_key(ThreadingTaskRunner()) == "threading"


def test_a_runner_must_implement_run():
    class Incomplete(BaseTaskRunner):
        name = "incomplete"

    with pytest.raises(TypeError):
        Incomplete()


@pytest.mark.parametrize(
    "first", ["triggers.tasks.runners", "triggers.runners", "triggers.task", "triggers.demo"]
)
def test_runner_and_task_modules_import_first_without_a_cycle(first):
    """A plugin imports the runners at its top; that must work on its own."""
    code = (
        f"import {first}\n"
        "from triggers.tasks.runners import task_runners\n"
        "print(sorted(task_runners.keys()))\n"
    )
    env = {k: v for k, v in os.environ.items() if k != "DJANGO_SETTINGS_MODULE"}
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT, env=env, timeout=120
    )
    assert done.returncode == 0, done.stderr
    assert "'sync'" in done.stdout and "'threading'" in done.stdout


# --------------------------------------------------------------------------- payload


def test_merge_kwargs_is_recursive_and_copies():
    base = {"go": {"fixed": 1, "nested": {"p": 1, "q": [1]}}, "limit": 5, "replace": {"a": 1}}
    override = {"go": {"nested": {"q": [2]}, "extra": True}, "replace": 3}

    merged = merge_kwargs(base, override)

    assert merged == {"go": {"fixed": 1, "nested": {"p": 1, "q": [2]}, "extra": True}, "limit": 5, "replace": 3}
    assert base == {"go": {"fixed": 1, "nested": {"p": 1, "q": [1]}}, "limit": 5, "replace": {"a": 1}}
    assert override == {"go": {"nested": {"q": [2]}, "extra": True}, "replace": 3}
    merged["go"]["nested"]["p"] = 99
    assert base["go"]["nested"]["p"] == 1


def test_docs_example_of_merged_kwargs():
    """docs/manager.rst, "Keyword arguments"."""
    with_params = {"pageReceived": {"source": "web", "limits": {"max": 10}}}
    kwargs = {"pageReceived": {"page": 1, "limits": {"min": 1}}}
    assert merge_kwargs(with_params, kwargs) == {
        "pageReceived": {"source": "web", "page": 1, "limits": {"max": 10, "min": 1}}
    }


def test_the_payload_names_everything_a_task_needs_to_rebuild(manager_session):
    with_params = {"go": {"fixed": 1, "nested": {"p": 1}}, "limit": 5}
    manager_session.update_configuration(
        {"t": {"after": ["go"], "run": "tests.add", "using": "tests-recording", "withParams": with_params}}
    )

    manager_session.fire("go", {"nested": {"q": 2}})

    payload = RecordingRunner.payloads(manager_session.storage.uid)["t#0"]
    assert payload == {
        "instance_name": "t#0",
        "manager_type": "default",
        "storage_type": "cache",
        "storage_uid": manager_session.storage.uid,
        "storage_kwargs": {"cache": manager_session.storage.cache_alias, "layout": "split"},
        "trigger_kwargs": {"go": {"fixed": 1, "nested": {"p": 1, "q": 2}}, "limit": 5},
    }
    # The instance was saved as scheduled before the runner got it.
    assert statuses(manager_session) == {"t#0": "scheduled"}


def test_a_missing_storage_brand_is_a_clear_error(manager_session):
    manager_session.update_configuration({"t": {"after": ["go"], "run": "tests.add"}})
    manager_session.fire("go")
    instance = fresh(manager_session)["t#0"]

    class UnregisteredStorage(CacheStorageBackend):
        pass

    storage = UnregisteredStorage(manager_session.storage.uid, cache=manager_session.storage.cache)
    with pytest.raises(RuntimeError, match=r"UnregisteredStorage.*'triggers\.storages'"):
        RecordingRunner()._prepare_task_kwargs(TriggerManager(storage), instance)


def test_an_unregistered_manager_subclass_runs_its_tasks_with_its_parent(manager_session):
    """As in 2.x: its tasks rebuild the registered class it inherits from; it is warned about once."""

    class UnregisteredManager(TriggerManager):
        pass

    manager = UnregisteredManager(manager_session.storage)
    manager.update_configuration({"t": {"after": ["go"], "run": "tests.add"}})
    with pytest.warns(RuntimeWarning, match=r"UnregisteredManager.*'default'.*register"):
        manager.fire("go", {"a": 2})
    assert fresh(manager_session)["t#0"].status == TaskInstance.STATUS_FINISHED
    payload = RecordingRunner()._prepare_task_kwargs(manager, fresh(manager_session)["t#0"])
    assert payload["manager_type"] == "default"
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # warned once: not again
        manager.fire("go", {"a": 3})


# --------------------------------------------------------------------------- threading


@pytest.mark.usefixtures("no_stray_threads")
def test_threading_runner_runs_each_task_in_its_own_thread(manager_session):
    manager_session.update_configuration(
        {name: {"after": ["go"], "run": "tests.behave", "using": "threading"} for name in ("t_a", "t_b")}
    )
    manager_session.fire("go")
    ThreadingTaskRunner.join_all(timeout=60)

    storage = fresh(manager_session)
    threads = {storage[name].metadata["result"]["thread"] for name in ("t_a#0", "t_b#0")}
    assert len(threads) == 2
    assert threading.current_thread().name not in threads
    assert ThreadingTaskRunner.running_threads() == []


@pytest.mark.usefixtures("no_stray_threads")
def test_join_all_waits_for_cascades(manager_session):
    chain = ["t_1", "t_2", "t_3", "t_4", "t_5"]
    config = {"t_1": {"after": ["go"], "run": "tests.add", "using": "threading"}}
    for previous, name in zip(chain, chain[1:]):
        config[name] = {"after": [previous], "run": "tests.add", "using": "threading"}
    manager_session.update_configuration(config)

    manager_session.fire("go", {"n": 1})
    ThreadingTaskRunner.join_all(timeout=60)

    assert statuses(manager_session) == {f"{name}#0": "finished" for name in chain}
    assert fresh(manager_session)["t_5#0"].metadata["result"] == {"sum": 1}


@pytest.mark.usefixtures("no_stray_threads")
def test_join_all_from_a_task_thread_is_refused(manager_session):
    manager_session.update_configuration(
        {"t": {"after": ["go"], "run": "tests.behave", "using": "threading", "withParams": behave(join_all=True)}}
    )
    manager_session.fire("go")
    ThreadingTaskRunner.join_all(timeout=60)

    result = fresh(manager_session)["t#0"].metadata["result"]
    assert "called from a task thread" in result["join_all_error"]


@pytest.mark.usefixtures("no_stray_threads")
def test_join_all_timeout_names_the_threads_still_running(manager_session):
    hold = f"hold-{manager_session.storage.uid}"
    event = EVENTS.setdefault(hold, threading.Event())
    manager_session.update_configuration(
        {"t": {"after": ["go"], "run": "tests.behave", "using": "threading", "withParams": behave(wait=hold)}}
    )
    manager_session.fire("go")

    with pytest.raises(TimeoutError, match="t#0"):
        ThreadingTaskRunner.join_all(timeout=0.01)

    event.set()
    ThreadingTaskRunner.join_all(timeout=60)
    assert statuses(manager_session) == {"t#0": "finished"}


DATABASE_USE = {}


@task("tests.uses_database")
def uses_database(context):
    """Queries the database through the task thread's own connection."""
    from django.db import connections

    connection = connections["default"]
    with connection.cursor() as cursor:
        cursor.execute("SELECT 1")
    DATABASE_USE[context.instance_name] = (connection, connection.connection is not None)
    return {}


@pytest.mark.django_db(transaction=True)
@pytest.mark.usefixtures("no_stray_threads")
def test_task_threads_close_their_database_connections(manager_session):
    from django.db import connections

    manager_session.update_configuration({"t": {"after": ["go"], "run": "tests.uses_database", "using": "threading"}})
    manager_session.fire("go")
    ThreadingTaskRunner.join_all(timeout=60)

    assert statuses(manager_session) == {"t#0": "finished"}
    connection, was_open = DATABASE_USE.pop("t#0")
    assert was_open
    assert connection is not connections["default"]  # the thread had its own
    assert connection.connection is None  # and closed it when its task ended


# --------------------------------------------------------------------------- synchronous


def test_sync_runner_runs_in_the_calling_thread_and_does_not_raise(manager_session):
    manager_session.update_configuration(
        {
            "t_ok": {"after": ["go"], "run": "tests.behave", "using": "sync"},
            "t_fails": {"after": ["go"], "run": "tests.behave", "using": "sync", "withParams": behave(**{"raise": "bad"})},
        }
    )

    ready = manager_session.fire("go")  # no exception: the failure is recorded

    assert sorted(i.name for i in ready) == ["t_fails#0", "t_ok#0"]
    storage = fresh(manager_session)
    assert storage["t_ok#0"].metadata["result"]["thread"] == threading.current_thread().name
    assert storage["t_fails#0"].status == "failed"
    assert storage["t_fails#0"].metadata[TaskInstance.META_EXCEPTION_TYPE] == "builtins.ValueError"


def test_default_runner_comes_from_the_setting(manager_session, settings):
    settings.TRIGGERS_DEFAULT_RUNNER = "tests-recording"
    manager_session.update_configuration({"t": {"after": ["go"], "run": "tests.add"}})
    assert manager_session.default_task_runner_name == "tests-recording"
    manager_session.fire("go")
    assert "t#0" in RecordingRunner.payloads(manager_session.storage.uid)


# --------------------------------------------------------------------------- the documentation's examples


@pytest.mark.usefixtures("no_stray_threads")
def test_docs_example_stuck_instances(manager_session):
    """docs/runners.rst: finding instances left scheduled and dispatching them again."""
    example = load_example("stuck_instances")
    manager_session.update_configuration(
        {
            "t_importSubject": {"after": ["questionnaireComplete"], "run": "tests.add", "using": "tests-recording"},
            "t_next": {"after": ["t_importSubject"], "run": "tests.add"},
        }
    )
    # The recording runner starts nothing: as if the process died after the save.
    manager_session.fire("questionnaireComplete", {"pages": 3})
    assert [i.name for i in example.find_stuck_instances(fresh(manager_session), older_than=0)] == ["t_importSubject#0"]

    manager_session.update_configuration(
        {"t_importSubject": {"after": ["questionnaireComplete"], "run": "tests.add", "using": "sync"}}
    )
    clones = example.redispatch_stuck_instances(manager_session, older_than=0)

    assert [c.name for c in clones] == ["t_importSubject#1"]
    assert statuses(manager_session) == {
        "t_importSubject#0": "replayed",
        "t_importSubject#1": "finished",
        "t_next#0": "finished",
    }
    assert example.find_stuck_instances(fresh(manager_session), older_than=0) == []


def test_docs_example_custom_runner(manager_session):
    example = load_example("custom_runner")
    task_runners.register("inline-logging", example.LoggingRunner)
    manager_session.update_configuration({"t": {"after": ["go"], "run": "tests.add", "using": "inline-logging"}})
    manager_session.fire("go", {"n": 2})
    assert fresh(manager_session)["t#0"].metadata["result"] == {"sum": 2}
    assert example.LoggingRunner.started[-1] == "t#0"


@pytest.mark.usefixtures("no_stray_threads")
def test_docs_example_waiting_for_tasks(manager_session):
    """docs/runners.rst: choosing runners with ``using``, then join_all()."""
    load_example("questionnaire_tasks")
    example = load_example("waiting_for_tasks")

    found = example.import_questionnaire(
        manager_session.storage.uid, {"name": "Ada", "email": "ada@example.org"}, [{"q1": 4}, {"q2": 5, "q3": 1}]
    )

    assert found == {
        "t_importSubject#0": "finished",
        "t_importResponses#0": "finished",
        "t_importResponses#1": "finished",
    }
    storage = fresh(manager_session)
    assert storage["t_importResponses#1"].metadata["result"] == {"page": 2, "imported": 2}
    assert storage["t_importResponses#0"].metadata["result"]["page"] == 1
