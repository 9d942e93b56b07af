"""Tasks: the registry, the context, and what run_task records for every outcome of a task body."""

from __future__ import annotations

import logging
import sys

import pytest

from tests.runner_support import (
    RecordingRunner,
    behave,
    load_example,
    statuses,
)
from tests.storage_support import fresh
from triggers import CacheStorageBackend, TriggerManager
from triggers.errors import UnserializableValue
from triggers.task import (
    MaxRetriesExceeded,
    Retry,
    StatusChange,
    TaskContext,
    TaskLogger,
    TriggerTask,
    UnknownTaskError,
    get_task,
    registered_tasks,
    run_task,
    task,
)
from triggers.types import TaskInstance

# The fixtures manager_session, test_runners and no_stray_threads.

FAILED = TaskInstance.STATUS_FAILED


def metadata_of(manager, name):
    return fresh(manager)[name].metadata


# --------------------------------------------------------------------------- registration


class Named(TriggerTask):
    name = "tests.named"

    def _run(self, context):
        return {"named": True}


class Dotted(TriggerTask):
    def _run(self, context):
        return {}


class AbstractBase(TriggerTask):
    abstract = True

    def _run(self, context):
        return {"from": type(self).__name__}


class FromAbstract(AbstractBase):
    name = "tests.from_abstract"


@task
def plain(context):
    return {}


@task("tests.positional")
def positional(context):
    return {}


@task(name="tests.keyword", max_retries=7)
def keyword(context):
    return {}


@task("tests.unstorable")
def unstorable(context):
    return {"callback": lambda: None}


@task("tests.raises_retry", max_retries=1)
def raises_retry(context):
    raise Retry(ValueError("still down"))


def test_subclasses_and_functions_are_registered_by_name():
    assert registered_tasks["tests.named"] is Named
    assert get_task("tests.named") is Named
    assert get_task("tests.test_tasks.Dotted") is Dotted and Dotted.name == "tests.test_tasks.Dotted"
    assert get_task("tests.from_abstract") is FromAbstract
    assert not any(cls is AbstractBase for cls in registered_tasks.values())
    assert Named.max_retries == 3

    assert plain.task_name == "tests.test_tasks.plain"
    assert get_task("tests.test_tasks.plain") is plain.task_class
    assert positional.task_name == "tests.positional"
    assert get_task("tests.keyword") is keyword.task_class
    assert keyword.task_class.max_retries == 7
    assert issubclass(keyword.task_class, TriggerTask)
    assert keyword(None) == {}  # the function itself is returned unchanged


def test_a_name_taken_by_another_task_is_refused():
    with pytest.raises(ValueError, match="'tests.named' is already registered by tests.test_tasks.Named"):

        class Impostor(TriggerTask):
            name = "tests.named"

            def _run(self, context):
                return {}

    with pytest.raises(ValueError, match="already registered"):
        task("tests.positional")(lambda context: {})
    assert registered_tasks["tests.named"] is Named


def test_an_unknown_name_is_an_error_listing_the_known_ones():
    with pytest.raises(UnknownTaskError, match=r"'no.such.task'.*tests\.named") as raised:
        get_task("no.such.task")
    assert isinstance(raised.value, LookupError)


def test_tasks_modules_of_installed_apps_are_discovered_on_a_miss(settings, uid):
    # Once only (not per cache): the module stays imported afterwards.
    assert "tests.discovered" not in registered_tasks
    assert "tests.discoverable_app.tasks" not in sys.modules
    settings.TRIGGERS_CACHE_ALIAS = "locmem"
    settings.TRIGGERS_DEFAULT_RUNNER = "sync"
    settings.INSTALLED_APPS = [*settings.INSTALLED_APPS, "tests.discoverable_app"]
    manager = TriggerManager(CacheStorageBackend(uid, cache="locmem"))
    manager.update_configuration({"t": {"after": ["go"], "run": "tests.discovered"}})

    manager.fire("go")

    assert metadata_of(manager, "t#0")[TaskInstance.META_RESULT] == {"found": True}
    assert "tests.discoverable_app.tasks" in sys.modules


def test_a_tasks_module_that_fails_to_import_fails_the_instance(settings, manager_session):
    settings.INSTALLED_APPS = [*settings.INSTALLED_APPS, "tests.broken_tasks_app"]
    manager_session.update_configuration({"t": {"after": ["go"], "run": "tests.nowhere"}})

    manager_session.fire("go")

    metadata = metadata_of(manager_session, "t#0")
    assert metadata[TaskInstance.META_EXCEPTION_TYPE] == "builtins.ModuleNotFoundError"
    assert "triggers_tests_module_that_does_not_exist" in metadata[TaskInstance.META_EXCEPTION_INFO]


# --------------------------------------------------------------------------- outcomes


def test_a_run_marks_running_with_the_actual_kwargs_then_finished(manager_session):
    manager_session.update_configuration({"t": {"after": ["go"], "run": "tests.behave", "withParams": {"limit": 3}}})
    manager_session.fire("go", {"n": 1})

    instance = fresh(manager_session)["t#0"]
    assert instance.status == TaskInstance.STATUS_FINISHED
    assert instance.metadata[TaskInstance.META_ACTUAL_KWARGS] == {"go": {"n": 1}, "limit": 3}
    assert instance.metadata[TaskInstance.META_RESULT]["ran"] == "t#0"
    assert instance.metadata[TaskInstance.META_RESULT]["retries"] == 0
    assert instance.metadata[TaskInstance.META_LOG_LEVEL] == logging.NOTSET
    stamps = instance.metadata[TaskInstance.META_TIMESTAMPS]
    assert stamps["scheduled"] <= stamps["running"] <= stamps["finished"]


def test_none_is_an_empty_result_and_still_cascades(manager_session):
    manager_session.update_configuration(
        {
            "t": {"after": ["go"], "run": "tests.behave", "withParams": behave(**{"return": None})},
            "t_next": {"after": ["t"], "run": "tests.add"},
        }
    )
    manager_session.fire("go")
    assert metadata_of(manager_session, "t#0")[TaskInstance.META_RESULT] == {}
    assert metadata_of(manager_session, "t_next#0")[TaskInstance.META_ACTUAL_KWARGS] == {"t": {}}


NOT_DICTS = {"int": 42, "list": [1, 2], "str": "done"}


@pytest.mark.parametrize("kind", sorted(NOT_DICTS))
def test_a_result_that_is_not_a_dict_fails_the_instance(manager_session, kind):
    value = NOT_DICTS[kind]
    manager_session.update_configuration(
        {
            "t": {"after": ["go"], "run": "tests.behave", "withParams": behave(**{"return": value})},
            "t_next": {"after": ["t"], "run": "tests.add"},
        }
    )
    manager_session.fire("go")

    metadata = metadata_of(manager_session, "t#0")
    assert fresh(manager_session)["t#0"].status == FAILED
    assert metadata[TaskInstance.META_EXCEPTION_TYPE] == "builtins.TypeError"
    assert f"returned {value!r} ({type(value).__name__}) instead of a dict" in metadata[TaskInstance.META_EXCEPTION_INFO]
    assert "t_next#0" not in statuses(manager_session)


def test_a_result_the_storage_cannot_hold_fails_the_instance(manager_session):
    manager_session.update_configuration({"t": {"after": ["go"], "run": "tests.unstorable"}})
    manager_session.fire("go")
    metadata = metadata_of(manager_session, "t#0")
    assert fresh(manager_session)["t#0"].status == FAILED
    assert metadata[TaskInstance.META_EXCEPTION_TYPE] == f"{UnserializableValue.__module__}.UnserializableValue"


def test_an_exception_is_recorded_with_type_traceback_context_and_level(manager_session):
    manager_session.update_configuration({"t": {"after": ["go"], "run": "tests.behave"}})
    manager_session.fire("go", {"subject": "ada", "behave": {"raise": "subject not found"}})

    instance = fresh(manager_session)["t#0"]
    assert instance.status == FAILED
    metadata = instance.metadata
    assert metadata[TaskInstance.META_EXCEPTION_TYPE] == "builtins.ValueError"
    info = metadata[TaskInstance.META_EXCEPTION_INFO]
    assert info.startswith("Traceback") and "ValueError: subject not found" in info and "_run" in info
    # exceptionContext is only what the exception carried (nothing here), as in 2.x;
    # where it failed is the package's own key.
    assert metadata[TaskInstance.META_EXCEPTION_CONTEXT] == {}
    failure = metadata[TaskInstance.META_FAILURE]
    assert failure["task"] == "tests.behave" and failure["instance"] == "t#0"
    assert failure["phase"] == "run" and "'subject': 'ada'" in failure["kwargs"]
    # logLevel is what the task logged (nothing): a failure alone leaves the logs resolved.
    assert metadata[TaskInstance.META_LOG_LEVEL] == logging.NOTSET
    assert instance.logs_resolved
    assert fresh(manager_session).get_instances_with_unresolved_logs() == []


def test_run_task_reraises_after_recording(manager_session):
    manager_session.update_configuration({"t": {"after": ["go"], "run": "tests.behave", "using": "tests-recording"}})
    manager_session.fire("go", behave(**{"raise": "boom"}))
    payload = RecordingRunner.payloads(manager_session.storage.uid)["t#0"]

    with pytest.raises(ValueError, match="boom"):
        run_task(payload)
    assert fresh(manager_session)["t#0"].status == FAILED


def test_run_task_returns_the_result_and_never_runs_an_instance_twice(manager_session):
    manager_session.update_configuration({"t": {"after": ["go"], "run": "tests.add", "using": "tests-recording"}})
    manager_session.fire("go", {"n": 4})
    payload = RecordingRunner.payloads(manager_session.storage.uid)["t#0"]

    assert run_task(payload) == {"sum": 4}
    before = fresh(manager_session).debug_repr()
    assert run_task(payload) is None  # delivered twice: not scheduled any more
    assert fresh(manager_session).debug_repr() == before


@pytest.mark.parametrize("level", ["INFO", "WARNING", "ERROR"])
def test_the_highest_level_logged_becomes_the_log_level(manager_session, caplog, level):
    manager_session.update_configuration(
        {"t": {"after": ["go"], "run": "tests.behave", "withParams": behave(log=level)}}
    )
    with caplog.at_level(logging.INFO, logger="triggers.tasks"):
        manager_session.fire("go")

    instance = fresh(manager_session)["t#0"]
    assert instance.status == TaskInstance.STATUS_FINISHED
    assert instance.log_level_name == level
    assert instance.logs_resolved is (level != "ERROR")
    # The records reach the application's handlers too.
    assert [(r.name, r.levelname, r.getMessage()) for r in caplog.records if r.name.startswith("triggers.tasks")] == [
        ("triggers.tasks.tests.behave", level, "logged by t#0")
    ]


def test_task_logger_tracks_levels_its_target_does_not_emit(caplog):
    logger = TaskLogger("triggers.tasks.tests.quiet")
    with caplog.at_level(logging.ERROR, logger="triggers.tasks.tests.quiet"):
        logger.debug("detail")
        logger.warning("careful")
    assert logger.max_level == logging.WARNING
    assert [r for r in caplog.records if r.name == "triggers.tasks.tests.quiet"] == []


def test_a_status_change_sets_that_status_without_cascading(manager_session):
    manager_session.update_configuration(
        {
            "t": {"after": ["go"], "run": "tests.behave", "withParams": behave(status=["failed", {"why": "bad input"}])},
            "t_next": {"after": ["t"], "run": "tests.add"},
        }
    )
    manager_session.fire("go")
    instance = fresh(manager_session)["t#0"]
    assert instance.status == FAILED
    assert instance.metadata["why"] == "bad input"
    assert "t_next#0" not in statuses(manager_session)
    # A failed instance can then be skipped or replayed like any other.
    manager_session.skip_failed_instance("t#0")


def test_skip_ends_the_run_skipped_with_its_metadata(manager_session):
    manager_session.update_configuration(
        {
            "t": {"after": ["go"], "run": "tests.behave", "withParams": behave(skip={"reason": "embedded"})},
            "t_next": {"after": ["t"], "run": "tests.add"},
        }
    )
    manager_session.fire("go")
    instance = fresh(manager_session)["t#0"]
    assert instance.status == TaskInstance.STATUS_SKIPPED
    assert instance.metadata["reason"] == "embedded"
    assert instance.is_resolved
    assert "t_next#0" not in statuses(manager_session)


def test_status_change_and_retry_check_their_arguments():
    assert StatusChange("skipped").metadata == {}
    with pytest.raises(ValueError, match="unknown status 'done'"):
        StatusChange("done")
    with pytest.raises(ValueError, match="cooldown"):
        Retry(cooldown=-1)


def test_retry_fails_the_run_and_replays_it_with_replacement_kwargs(manager_session):
    manager_session.update_configuration(
        {
            "t": {
                "after": ["go"],
                "run": "tests.behave",
                "withParams": behave(retry_until=1, cooldown=0.01),
            }
        }
    )
    manager_session.fire("go", {"behave": {"replacement_kwargs": {"go": {"attempt": "second"}}}})

    storage = fresh(manager_session)
    first, second = storage["t#0"], storage["t#1"]
    assert first.status == TaskInstance.STATUS_REPLAYED
    assert first.metadata[TaskInstance.META_EXCEPTION_TYPE] == "builtins.RuntimeError"
    assert "attempt 0 failed" in first.metadata[TaskInstance.META_EXCEPTION_INFO]
    assert first.metadata["attempt"] == 0
    assert second.status == TaskInstance.STATUS_FINISHED
    assert second.depth == 1 and second.metadata[TaskInstance.META_PARENT] == "t#0"
    assert second.kwargs == {"go": {"attempt": "second"}}
    assert second.cooldown == 0.01
    assert second.metadata[TaskInstance.META_RESULT]["retries"] == 1


def test_retries_stop_at_max_retries(manager_session):
    # tests.behave has max_retries = 2: the first run and two retries.
    manager_session.update_configuration(
        {"t": {"after": ["go"], "run": "tests.behave", "withParams": behave(retry_until=10)}}
    )
    manager_session.fire("go")

    assert statuses(manager_session) == {"t#0": "replayed", "t#1": "replayed", "t#2": "failed"}
    last = fresh(manager_session)["t#2"]
    assert last.depth == 2
    assert last.metadata[TaskInstance.META_EXCEPTION_TYPE] == "triggers.task.MaxRetriesExceeded"
    info = last.metadata[TaskInstance.META_EXCEPTION_INFO]
    assert "RuntimeError: attempt 2 failed" in info  # the cause is kept
    assert "after 2 retries; max_retries is 2" in info


def test_raising_retry_directly_obeys_max_retries_too(manager_session):
    manager_session.update_configuration(
        {"t": {"after": ["go"], "run": "tests.raises_retry", "using": "tests-recording"}}
    )
    manager_session.fire("go")
    payload = RecordingRunner.payloads(manager_session.storage.uid)["t#0"]
    run_task(payload)  # fails, replays; the clone goes to the recording runner
    payload = RecordingRunner.payloads(manager_session.storage.uid)["t#1"]

    with pytest.raises(MaxRetriesExceeded):
        run_task(payload)

    assert statuses(manager_session) == {"t#0": "replayed", "t#1": "failed"}
    assert "ValueError: still down" in fresh(manager_session)["t#1"].metadata[TaskInstance.META_EXCEPTION_INFO]


# --------------------------------------------------------------------------- context


def test_the_context_rebuilds_the_session_from_the_payload(manager_session):
    manager_session.update_configuration({"t": {"after": ["go"], "run": "tests.add", "using": "tests-recording"}})
    manager_session.fire("go", {"n": 1})
    payload = RecordingRunner.payloads(manager_session.storage.uid)["t#0"]

    context = TaskContext.from_payload(payload)

    assert context.instance_name == "t#0"
    assert context.trigger_kwargs == {"go": {"n": 1}}
    assert type(context.manager) is type(manager_session)
    assert context.manager is not manager_session and context.manager.storage is not manager_session.storage
    assert context.manager.storage.uid == manager_session.storage.uid
    assert context.manager is context.manager  # built once
    assert context.task_instance.status == "scheduled"
    manager_session.update_instance_metadata("t#0", {"note": 1})
    assert context.task_instance.metadata["note"] == 1  # read afresh
    with pytest.raises(ValueError, match="storage_uid"):
        TaskContext.from_payload({**payload, "storage_uid": ""})


# --------------------------------------------------------------------------- the documentation's examples


def test_docs_example_questionnaire_tasks(manager_session, caplog):
    """docs/tasks.rst: the questionnaire's task bodies, retries included."""
    tasks = load_example("questionnaire_tasks")
    workflow = load_example("questionnaire_workflow")
    tasks.OUTAGE["remaining"] = 2

    manager = workflow.start_questionnaire(manager_session.storage.uid, {"name": "Ada", "email": "ada@example.org"})
    workflow.page_received(manager, 1, {"q1": 4, "q2": 5}, "Mozilla/5.0 Firefox/128.0")
    workflow.page_received(manager, 2, {"q3": 2})
    workflow.questionnaire_complete(manager, pages=2)

    storage = fresh(manager_session)
    assert {i.name: i.status for i in storage.iter_instances()} == {
        "t_importSubject#0": "replayed",
        "t_importSubject#1": "replayed",
        "t_importSubject#2": "finished",
        "t_importResponses#0": "finished",
        "t_importResponses#1": "finished",
        "t_importBrowserMetadata#0": "finished",
    }
    subject_id = storage["t_importSubject#2"].metadata["result"]["subjectId"]
    assert tasks.SUBJECTS[subject_id]["name"] == "Ada"
    assert storage["t_importSubject#0"].metadata["service"] == "subjects"
    assert storage["t_importResponses#1"].metadata["result"] == {"page": 2, "imported": 1}
    assert (subject_id, 1, "q2", 5) in tasks.RESPONSES
    assert storage["t_importBrowserMetadata#0"].metadata["result"] == {"browser": "Firefox", "version": "128.0"}
    assert storage["t_importBrowserMetadata#0"].log_level == logging.NOTSET
    assert storage["t_importSubject#2"].log_level_name == "INFO"


def test_docs_example_questionnaire_tasks_warning(manager_session):
    load_example("questionnaire_tasks")
    workflow = load_example("questionnaire_workflow")
    manager = workflow.start_questionnaire(manager_session.storage.uid, {"name": "Di", "email": "di@example.org"})
    workflow.page_received(manager, 1, {"q1": 1}, "SomeKiosk")
    workflow.questionnaire_complete(manager, pages=1)

    instance = fresh(manager_session)["t_importBrowserMetadata#0"]
    assert instance.status == "finished"
    assert instance.log_level_name == "WARNING"
    assert instance.metadata["result"] == {"browser": "SomeKiosk", "version": ""}


def test_docs_example_questionnaire_tasks_skip(manager_session):
    load_example("questionnaire_tasks")
    workflow = load_example("questionnaire_workflow")
    manager = workflow.start_questionnaire(manager_session.storage.uid, {"name": "Bo", "email": "bo@example.org"})
    workflow.page_received(manager, 1, {"q1": 1})  # no user agent
    workflow.questionnaire_complete(manager, pages=1)

    instance = fresh(manager_session)["t_importBrowserMetadata#0"]
    assert instance.status == "skipped"
    assert instance.metadata["reason"] == "no user agent"


def test_docs_example_embedded_questionnaire(manager_session):
    load_example("questionnaire_tasks")
    workflow = load_example("questionnaire_workflow")
    manager = workflow.start_questionnaire(
        manager_session.storage.uid, {"name": "Cy", "email": "cy@example.org"}, embedded=True
    )
    workflow.page_received(manager, 1, {"q1": 1}, "EmbeddedApp/1.0")
    workflow.questionnaire_complete(manager, pages=1)

    assert statuses(manager_session) == {
        "t_importSubject#0": "finished",
        "t_importResponses#0": "finished",
        "t_importBrowserMetadata#0": "abandoned",
    }
