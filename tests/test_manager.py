"""The rules of TriggerManager (CONTRACT.md, "TriggerManager"), through the public API.

Every test runs on LocMem and on Redis (the ``manager_session`` fixture). Tasks are
real task bodies (tests.runner_support); unless a test says otherwise they run
synchronously, so a fire returns once its whole cascade has run.
"""

from __future__ import annotations

import logging
import multiprocessing
import sys
import threading
import traceback

import pytest

from tests.conftest import require_service
from tests.runner_support import (
    RecordingRunner,
    behave,
    statuses,
)
from tests.storage_support import fresh
from triggers import CacheStorageBackend, TriggerManager, trigger_managers
from triggers.errors import UnknownInstance
from triggers.manager import DispatchFailed
from triggers.tasks.runners import ThreadingTaskRunner
from triggers.types import TaskInstance

# The fixtures manager_session, test_runners and no_stray_threads.

FINISHED = TaskInstance.STATUS_FINISHED


def ran_with(manager, name):
    return fresh(manager)[name].metadata[TaskInstance.META_ACTUAL_KWARGS]


def result_of(manager, name):
    return fresh(manager)[name].metadata[TaskInstance.META_RESULT]


# --------------------------------------------------------------------------- configuration


def test_update_configuration_merges_by_name_and_saves(manager_session):
    manager_session.update_configuration({"t_a": {"after": ["go"], "run": "tests.behave"}})
    manager_session.update_configuration({"t_b": {"after": ["go"], "run": "tests.add"}})
    manager_session.update_configuration({"t_a": {"after": ["other"], "run": "tests.add"}})

    tasks = fresh(manager_session).tasks
    assert sorted(tasks) == ["t_a", "t_b"]
    assert tasks["t_a"].after == {"other"} and tasks["t_a"].run == "tests.add"
    assert tasks["t_b"].after == {"go"}
    assert list(fresh(manager_session).iter_instances()) == []


def test_earlier_firings_are_not_replayed_onto_new_tasks(manager_session):
    manager_session.fire("go", {"n": 1})
    manager_session.update_configuration(
        {
            "t_only_go": {"after": ["go"], "run": "tests.add"},
            "t_go_and_more": {"after": ["go", "more"], "run": "tests.add"},
        }
    )
    assert statuses(manager_session) == {}

    # A new instance made by a later firing does start with go's latest kwargs.
    manager_session.fire("more", {"m": 2})
    assert statuses(manager_session) == {"t_go_and_more#0": FINISHED}
    assert ran_with(manager_session, "t_go_and_more#0") == {"go": {"n": 1}, "more": {"m": 2}}

    manager_session.fire("go", {"n": 5})
    assert statuses(manager_session) == {"t_go_and_more#0": FINISHED, "t_only_go#0": FINISHED}
    assert ran_with(manager_session, "t_only_go#0") == {"go": {"n": 5}}


# --------------------------------------------------------------------------- firing


def test_single_trigger_task_runs_once_with_the_trigger_kwargs(manager_session):
    manager_session.update_configuration({"t_import": {"after": ["go"], "run": "tests.add"}})

    ready = manager_session.fire("go", {"a": 1, "b": 2})

    assert [i.name for i in ready] == ["t_import#0"]
    instance = fresh(manager_session)["t_import#0"]
    assert instance.status == FINISHED
    assert instance.kwargs == {"go": {"a": 1, "b": 2}}
    assert instance.metadata[TaskInstance.META_ACTUAL_KWARGS] == {"go": {"a": 1, "b": 2}}
    assert instance.metadata[TaskInstance.META_RESULT] == {"sum": 3}
    stamps = instance.metadata[TaskInstance.META_TIMESTAMPS]
    assert {"created", "lastModified", "scheduled", "running", "finished"} <= set(stamps)

    # The trigger again: the task has an instance that cannot take it, and no andEvery.
    assert manager_session.fire("go", {"a": 10}) == []
    assert statuses(manager_session) == {"t_import#0": FINISHED}


def test_multi_trigger_task_waits_for_every_trigger(manager_session):
    manager_session.update_configuration(
        {"t_subject": {"after": ["firstPageReceived", "questionnaireComplete"], "run": "tests.add"}}
    )

    assert manager_session.fire("firstPageReceived", {"page": 1}) == []
    waiting = fresh(manager_session)["t_subject#0"]
    assert waiting.status == TaskInstance.STATUS_UNSTARTED
    assert waiting.kwargs == {"firstPageReceived": {"page": 1}}

    ready = manager_session.fire("questionnaireComplete", {"pages": 3})
    assert [i.name for i in ready] == ["t_subject#0"]
    assert ran_with(manager_session, "t_subject#0") == {
        "firstPageReceived": {"page": 1},
        "questionnaireComplete": {"pages": 3},
    }
    assert result_of(manager_session, "t_subject#0") == {"sum": 4}


def test_first_firing_wins_while_latest_kwargs_follow_the_last(manager_session):
    manager_session.update_configuration({"t": {"after": ["a", "b"], "run": "tests.add"}})

    manager_session.fire("a", {"n": 1})
    manager_session.fire("a", {"n": 2})
    manager_session.fire("b", {"n": 10})

    assert ran_with(manager_session, "t#0") == {"a": {"n": 1}, "b": {"n": 10}}
    assert fresh(manager_session).latest_kwargs == {"a": {"n": 2}, "b": {"n": 10}, "t": {"sum": 11}}


def test_with_params_are_merged_recursively_and_trigger_values_win(manager_session):
    with_params = {"go": {"fixed": 1, "nested": {"p": 1, "q": 2}}, "limit": 5}
    manager_session.update_configuration({"t": {"after": ["go"], "run": "tests.behave", "withParams": with_params}})

    manager_session.fire("go", {"nested": {"q": 3}, "extra": True, "fixed": 7})

    assert ran_with(manager_session, "t#0") == {
        "go": {"fixed": 7, "nested": {"p": 1, "q": 3}, "extra": True},
        "limit": 5,
    }
    storage = fresh(manager_session)
    assert storage.tasks["t"].with_params == with_params  # not mutated by the merge
    assert storage["t#0"].kwargs == {"go": {"nested": {"q": 3}, "extra": True, "fixed": 7}}


def test_and_every_makes_one_instance_per_firing(manager_session):
    manager_session.update_configuration(
        {"t_responses": {"after": ["t_subject"], "andEvery": "pageReceived", "run": "tests.behave"}}
    )

    for page in (1, 2, 3):
        manager_session.fire("pageReceived", {"page": page})
    assert statuses(manager_session) == {f"t_responses#{n}": TaskInstance.STATUS_UNSTARTED for n in range(3)}

    ready = manager_session.fire("t_subject", {"subjectId": 7})
    assert sorted(i.name for i in ready) == ["t_responses#0", "t_responses#1", "t_responses#2"]
    for n in range(3):
        assert ran_with(manager_session, f"t_responses#{n}") == {
            "pageReceived": {"page": n + 1},
            "t_subject": {"subjectId": 7},
        }

    # A later page gets its own instance, started with t_subject's latest kwargs.
    ready = manager_session.fire("pageReceived", {"page": 4})
    assert [i.name for i in ready] == ["t_responses#3"]
    assert ran_with(manager_session, "t_responses#3") == {"pageReceived": {"page": 4}, "t_subject": {"subjectId": 7}}
    assert set(statuses(manager_session).values()) == {FINISHED}


def test_and_every_firing_taken_by_a_waiting_instance_makes_none(manager_session):
    manager_session.update_configuration(
        {"t_responses": {"after": ["t_subject"], "andEvery": "pageReceived", "run": "tests.add"}}
    )
    manager_session.fire("t_subject", {"s": 1})
    assert statuses(manager_session) == {"t_responses#0": TaskInstance.STATUS_UNSTARTED}

    manager_session.fire("pageReceived", {"page": 1})  # taken by #0
    manager_session.fire("pageReceived", {"page": 2})  # nobody waits: #1
    assert statuses(manager_session) == {"t_responses#0": FINISHED, "t_responses#1": FINISHED}
    assert ran_with(manager_session, "t_responses#1") == {"pageReceived": {"page": 2}, "t_subject": {"s": 1}}


# --------------------------------------------------------------------------- unless


def test_unless_abandons_a_waiting_instance(manager_session):
    manager_session.update_configuration(
        {"t_browser": {"after": ["t_subject", "pageReceived"], "unless": ["isEmbeddedApplication"], "run": "tests.add"}}
    )
    manager_session.fire("pageReceived", {"page": 1})
    manager_session.fire("isEmbeddedApplication")
    assert statuses(manager_session) == {"t_browser#0": TaskInstance.STATUS_ABANDONED}

    assert manager_session.fire("t_subject", {"s": 1}) == []
    assert statuses(manager_session) == {"t_browser#0": TaskInstance.STATUS_ABANDONED}
    assert "abandoned" in fresh(manager_session)["t_browser#0"].metadata[TaskInstance.META_TIMESTAMPS]


def test_unless_fired_before_any_other_trigger_abandons_the_first_instance(manager_session):
    manager_session.update_configuration(
        {"t_browser": {"after": ["t_subject", "pageReceived"], "unless": ["isEmbeddedApplication"], "run": "tests.add"}}
    )
    manager_session.fire("isEmbeddedApplication")
    instance = fresh(manager_session)["t_browser#0"]
    assert instance.status == TaskInstance.STATUS_ABANDONED
    assert instance.abandon_state == {"isEmbeddedApplication"}

    manager_session.fire("pageReceived", {"page": 1})
    manager_session.fire("t_subject", {"s": 1})
    assert statuses(manager_session) == {"t_browser#0": TaskInstance.STATUS_ABANDONED}


def test_unless_needs_every_one_of_its_triggers(manager_session):
    manager_session.update_configuration({"t": {"after": ["a", "b"], "unless": ["x", "y"], "run": "tests.add"}})
    manager_session.fire("a")
    manager_session.fire("x")
    assert statuses(manager_session) == {"t#0": TaskInstance.STATUS_UNSTARTED}
    manager_session.fire("y")
    assert statuses(manager_session) == {"t#0": TaskInstance.STATUS_ABANDONED}


def test_unless_with_and_every_abandons_later_instances_at_birth(manager_session):
    manager_session.update_configuration(
        {"t": {"after": ["s"], "andEvery": "p", "unless": ["cancel"], "run": "tests.add"}}
    )
    manager_session.fire("p", {"n": 1})
    manager_session.fire("cancel")
    manager_session.fire("p", {"n": 2})
    assert statuses(manager_session) == {"t#0": "abandoned", "t#1": "abandoned"}
    assert manager_session.fire("s") == []


def test_unless_after_the_task_ran_changes_nothing(manager_session):
    manager_session.update_configuration({"t": {"after": ["a"], "unless": ["x"], "run": "tests.add"}})
    manager_session.fire("a", {"n": 1})
    before = fresh(manager_session).debug_repr()["instances"]

    assert manager_session.fire("x") == []

    assert fresh(manager_session).debug_repr()["instances"] == before
    assert statuses(manager_session) == {"t#0": FINISHED}


# --------------------------------------------------------------------------- cascades


def test_a_finished_task_fires_its_name_with_its_result(manager_session):
    manager_session.update_configuration(
        {
            "t_first": {"after": ["go"], "run": "tests.add"},
            "t_second": {"after": ["t_first"], "run": "tests.add", "withParams": {"bonus": {"n": 10}}},
            "t_third": {"after": ["t_first", "t_second"], "run": "tests.add"},
        }
    )
    manager_session.fire("go", {"a": 1, "b": 2})

    assert result_of(manager_session, "t_first#0") == {"sum": 3}
    assert ran_with(manager_session, "t_second#0") == {"t_first": {"sum": 3}, "bonus": {"n": 10}}
    assert result_of(manager_session, "t_second#0") == {"sum": 13}
    assert ran_with(manager_session, "t_third#0") == {"t_first": {"sum": 3}, "t_second": {"sum": 13}}
    assert result_of(manager_session, "t_third#0") == {"sum": 16}
    assert fresh(manager_session).latest_kwargs["t_third"] == {"sum": 16}


# --------------------------------------------------------------------------- replay and skip


def _failing_task(manager_session):
    manager_session.update_configuration(
        {
            "t_import": {"after": ["go"], "run": "tests.behave"},
            "t_after": {"after": ["t_import"], "run": "tests.add"},
        }
    )
    manager_session.fire("go", behave(**{"raise": "import failed"}))
    instance = fresh(manager_session)["t_import#0"]
    assert instance.status == TaskInstance.STATUS_FAILED
    return instance


def test_replay_clones_the_failed_instance_and_runs_the_clone(manager_session):
    _failing_task(manager_session)

    clone = manager_session.replay_failed_instance("t_import#0")

    assert clone.name == "t_import#1"
    storage = fresh(manager_session)
    original, replayed = storage["t_import#0"], storage["t_import#1"]
    assert original.status == TaskInstance.STATUS_REPLAYED
    assert replayed.metadata[TaskInstance.META_PARENT] == "t_import#0"
    assert replayed.depth == 1
    assert replayed.kwargs == original.kwargs
    # Same kwargs, same failure; a replay of the replay goes one deeper.
    assert replayed.status == TaskInstance.STATUS_FAILED
    again = manager_session.replay_failed_instance(replayed)
    assert again.name == "t_import#2"
    assert fresh(manager_session)["t_import#2"].depth == 2
    assert fresh(manager_session)["t_import#2"].metadata[TaskInstance.META_PARENT] == "t_import#1"
    assert "t_after#0" not in statuses(manager_session)


def test_replay_with_replacement_kwargs(manager_session):
    _failing_task(manager_session)

    manager_session.replay_failed_instance("t_import#0", {"go": {"fixed": 1}})

    storage = fresh(manager_session)
    assert storage["t_import#1"].kwargs == {"go": {"fixed": 1}}
    assert storage["t_import#1"].status == FINISHED
    assert storage["t_import#1"].metadata[TaskInstance.META_ACTUAL_KWARGS] == {"go": {"fixed": 1}}
    # The clone finished, so its result cascaded.
    assert storage["t_after#0"].status == FINISHED


def test_skip_without_cascade(manager_session):
    _failing_task(manager_session)

    skipped = manager_session.skip_failed_instance("t_import#0")

    assert skipped.status == TaskInstance.STATUS_SKIPPED
    instance = fresh(manager_session)["t_import#0"]
    assert instance.status == TaskInstance.STATUS_SKIPPED
    assert instance.metadata["cascade"] is False
    assert instance.metadata["result"] == {}
    assert instance.is_resolved
    assert "t_import" not in fresh(manager_session).latest_kwargs
    assert "t_after#0" not in statuses(manager_session)


def test_skip_with_cascade_fires_the_result(manager_session):
    _failing_task(manager_session)

    manager_session.skip_failed_instance("t_import#0", cascade=True, result={"n": 5})

    storage = fresh(manager_session)
    assert storage["t_import#0"].metadata["cascade"] is True
    assert storage["t_import#0"].metadata["result"] == {"n": 5}
    assert storage["t_after#0"].status == FINISHED
    assert storage["t_after#0"].metadata[TaskInstance.META_ACTUAL_KWARGS] == {"t_import": {"n": 5}}


@pytest.mark.parametrize("operation", ["replay", "skip"])
def test_replaying_or_skipping_an_instance_that_did_not_fail_changes_nothing(manager_session, operation):
    manager_session.update_configuration(
        {
            "t_done": {"after": ["go"], "run": "tests.add"},
            "t_waiting": {"after": ["go", "later"], "run": "tests.add"},
            "t_queued": {"after": ["go"], "run": "tests.add", "using": "tests-recording"},
        }
    )
    manager_session.fire("go", {"n": 1})
    assert statuses(manager_session) == {"t_done#0": "finished", "t_waiting#0": "unstarted", "t_queued#0": "scheduled"}
    act = {
        "replay": manager_session.replay_failed_instance,
        "skip": manager_session.skip_failed_instance,
    }[operation]

    for name in ("t_done#0", "t_waiting#0", "t_queued#0"):
        before = fresh(manager_session).debug_repr()
        with pytest.raises(ValueError, match="only failed instances"):
            act(name)
        assert fresh(manager_session).debug_repr() == before

    before = fresh(manager_session).debug_repr()
    with pytest.raises(UnknownInstance):
        act("t_nothing#0")
    assert fresh(manager_session).debug_repr() == before


# --------------------------------------------------------------------------- hooks


class HookManager(TriggerManager):
    """Records every hook call (tasks rebuild it through the registry, cascades included)."""

    calls: list[tuple] = []
    lock = threading.Lock()

    def _post_fire(self, trigger_name, tasks_scheduled):
        with HookManager.lock:
            HookManager.calls.append(
                ("fire", self.storage.uid, trigger_name, [(i.name, i.status) for i in tasks_scheduled])
            )

    def _post_replay(self, task_instance):
        with HookManager.lock:
            HookManager.calls.append(("replay", self.storage.uid, task_instance.name, task_instance.status))

    def _post_skip(self, task_instance, cascade):
        with HookManager.lock:
            HookManager.calls.append(("skip", self.storage.uid, task_instance.name, task_instance.status, cascade))


@pytest.fixture
def hooked(manager_session):
    trigger_managers.register("tests-hooks", HookManager)
    manager = HookManager(manager_session.storage)
    yield manager
    with HookManager.lock:
        HookManager.calls[:] = [c for c in HookManager.calls if c[1] != manager.storage.uid]


def hook_calls(manager):
    with HookManager.lock:
        return [c[:1] + c[2:] for c in HookManager.calls if c[1] == manager.storage.uid]


def test_hooks_are_called_with_what_happened(hooked):
    hooked.update_configuration(
        {
            "t_import": {"after": ["go"], "run": "tests.behave"},
            "t_after": {"after": ["t_import"], "run": "tests.add"},
        }
    )
    hooked.fire("nothing-uses-this")
    hooked.fire("go", behave(**{"raise": "boom"}))
    hooked.replay_failed_instance("t_import#0", {"go": {}})
    hooked.fire("go", behave(**{"raise": "boom"}))  # t_import has instances; nothing new
    hooked.update_configuration({"t_other": {"after": ["go2"], "run": "tests.behave"}})
    hooked.fire("go2", behave(**{"raise": "boom"}))
    hooked.skip_failed_instance("t_other#0", cascade=True, result={"n": 1})

    assert hook_calls(hooked) == [
        ("fire", "nothing-uses-this", []),
        ("fire", "go", [("t_import#0", "scheduled")]),
        # The cascades, fired by the tasks through rebuilt HookManagers, are
        # reported before the replay that started them returns (innermost first).
        ("fire", "t_after", []),
        ("fire", "t_import", [("t_after#0", "scheduled")]),
        ("replay", "t_import#0", "replayed"),
        ("fire", "go", []),
        ("fire", "go2", [("t_other#0", "scheduled")]),
        ("fire", "t_other", []),
        ("skip", "t_other#0", "skipped", True),
    ]


def test_default_hooks_do_nothing(manager_session):
    manager_session.update_configuration({"t": {"after": ["go"], "run": "tests.behave"}})
    manager_session.fire("go", behave(**{"raise": "x"}))
    assert manager_session._post_fire("go", []) is None
    assert manager_session._post_replay(fresh(manager_session)["t#0"]) is None
    assert manager_session._post_skip(fresh(manager_session)["t#0"], False) is None


# --------------------------------------------------------------------------- the threading runner


@pytest.mark.usefixtures("no_stray_threads")
def test_threading_runner_end_to_end(manager_session):
    threading_ = {"using": "threading", "run": "tests.behave"}
    manager_session.update_configuration(
        {
            "t_ok": {**threading_, "after": ["go"]},
            "t_fails": {
                **threading_,
                "after": ["go"],
                "withParams": behave(**{"raise": "no such subject", "log": "WARNING"}),
            },
            "t_skips": {**threading_, "after": ["go"], "withParams": behave(skip={"reason": "embedded"})},
            "t_retries": {**threading_, "after": ["go"], "withParams": behave(retry_until=2)},
            "t_gives_up": {**threading_, "after": ["go"], "withParams": behave(retry_until=5)},
            "t_next": {**threading_, "after": ["t_ok"]},
        }
    )

    manager_session.fire("go", {"n": 1})
    ThreadingTaskRunner.join_all(timeout=60)

    storage = fresh(manager_session)
    assert statuses(manager_session) == {
        "t_ok#0": "finished",
        "t_next#0": "finished",
        "t_fails#0": "failed",
        "t_skips#0": "skipped",
        "t_retries#0": "replayed",
        "t_retries#1": "replayed",
        "t_retries#2": "finished",
        "t_gives_up#0": "replayed",
        "t_gives_up#1": "replayed",
        "t_gives_up#2": "failed",
    }
    ok = storage["t_ok#0"].metadata[TaskInstance.META_RESULT]
    assert ok["thread"].startswith("triggers:") and ok["thread"] != threading.current_thread().name
    assert storage["t_next#0"].metadata[TaskInstance.META_ACTUAL_KWARGS] == {"t_ok": ok}

    failed = storage["t_fails#0"].metadata
    assert failed[TaskInstance.META_EXCEPTION_TYPE] == "builtins.ValueError"
    assert "no such subject" in failed[TaskInstance.META_EXCEPTION_INFO]
    assert failed[TaskInstance.META_LOG_LEVEL] == logging.WARNING  # what it logged, as in 2.x

    assert storage["t_skips#0"].metadata["reason"] == "embedded"
    assert storage["t_retries#2"].metadata[TaskInstance.META_RESULT]["retries"] == 2
    assert storage["t_retries#1"].metadata["attempt"] == 1
    assert storage["t_retries#1"].metadata[TaskInstance.META_EXCEPTION_TYPE] == "builtins.RuntimeError"
    gave_up = storage["t_gives_up#2"].metadata
    assert gave_up[TaskInstance.META_EXCEPTION_TYPE] == "triggers.task.MaxRetriesExceeded"
    assert storage["t_gives_up#2"].depth == 2


# --------------------------------------------------------------------------- dispatch failures


def test_a_runner_failing_for_one_instance_fails_only_that_one(manager_session):
    manager_session.update_configuration(
        {
            "t_a": {"after": ["go"], "run": "tests.add"},
            "t_unknown_runner": {"after": ["go"], "run": "tests.add", "using": "no-such-runner"},
            "t_broken_runner": {"after": ["go"], "run": "tests.add", "using": "tests-failing"},
            "t_b": {"after": ["go"], "run": "tests.add"},
        }
    )

    with pytest.raises(DispatchFailed) as raised:
        manager_session.fire("go", {"n": 1})

    assert sorted(raised.value.failures) == ["t_broken_runner#0", "t_unknown_runner#0"]
    storage = fresh(manager_session)
    assert storage["t_a#0"].status == FINISHED
    assert storage["t_b#0"].status == FINISHED

    unknown = storage["t_unknown_runner#0"]
    assert unknown.status == TaskInstance.STATUS_FAILED
    assert unknown.metadata[TaskInstance.META_EXCEPTION_TYPE] == "triggers.registry.UnknownRegistryKey"
    assert "no-such-runner" in unknown.metadata[TaskInstance.META_EXCEPTION_INFO]

    broken = storage["t_broken_runner#0"]
    assert broken.status == TaskInstance.STATUS_FAILED
    assert broken.metadata[TaskInstance.META_EXCEPTION_TYPE] == "builtins.ConnectionError"
    assert "the queue is down" in broken.metadata[TaskInstance.META_EXCEPTION_INFO]

    # Once the runner is fixed, an operator replays it.
    manager_session.update_configuration({"t_unknown_runner": {"after": ["go"], "run": "tests.add", "using": "sync"}})
    manager_session.replay_failed_instance("t_unknown_runner#0")
    assert fresh(manager_session)["t_unknown_runner#1"].status == FINISHED


@pytest.mark.parametrize("run", ["os.system", "tests.never_imported.boom", "tests.never_imported"])
def test_a_run_naming_no_registered_task_fails_and_imports_nothing(manager_session, run):
    assert "tests.never_imported" not in sys.modules
    manager_session.update_configuration({"t": {"after": ["go"], "run": run}})

    manager_session.fire("go", {"command": "echo pwned"})

    instance = fresh(manager_session)["t#0"]
    assert instance.status == TaskInstance.STATUS_FAILED
    assert instance.metadata[TaskInstance.META_EXCEPTION_TYPE] == "triggers.task.UnknownTaskError"
    assert f"no task is registered under the name {run!r}" in instance.metadata[TaskInstance.META_EXCEPTION_INFO]
    assert "tests.never_imported" not in sys.modules


# --------------------------------------------------------------------------- processes


PROCESSES = 4
FIRES = 8


def _fire_from_child(uid, number):
    try:
        from django.core.cache import caches

        manager = TriggerManager(CacheStorageBackend(uid, cache="redis"))
        for n in range(FIRES):
            manager.fire(f"p{number}_hit{n}", {"proc": number, "n": n})
            manager.fire("tick", {"proc": number, "n": n})
        caches["redis"].close()
    except BaseException:
        traceback.print_exc()
        raise


def test_processes_firing_into_one_redis_session_lose_nothing(uid, settings, test_runners):
    require_service("redis")
    settings.TRIGGERS_CACHE_ALIAS = "redis"
    settings.TRIGGERS_DEFAULT_RUNNER = "sync"
    manager = TriggerManager(CacheStorageBackend(uid, cache="redis"))
    config = {"t_tick": {"after": [], "andEvery": "tick", "run": "tests.add"}}
    for number in range(PROCESSES):
        for n in range(FIRES):
            config[f"t_p{number}_{n}"] = {"after": [f"p{number}_hit{n}"], "run": "tests.add"}
    manager.update_configuration(config)

    context = multiprocessing.get_context("fork")
    children = [context.Process(target=_fire_from_child, args=(uid, number)) for number in range(PROCESSES)]
    for child in children:
        child.start()
    for child in children:
        child.join(120)
    assert [child.exitcode for child in children] == [0] * PROCESSES

    storage = fresh(manager)
    instances = {i.name: i for i in storage.iter_instances()}
    assert len(instances) == 2 * PROCESSES * FIRES
    assert {i.status for i in instances.values()} == {FINISHED}
    for number in range(PROCESSES):
        for n in range(FIRES):
            instance = instances[f"t_p{number}_{n}#0"]
            assert instance.metadata[TaskInstance.META_ACTUAL_KWARGS] == {
                f"p{number}_hit{n}": {"proc": number, "n": n}
            }
            assert storage.latest_kwargs[f"p{number}_hit{n}"] == {"proc": number, "n": n}
    ticks = sorted(
        (i.kwargs["tick"]["proc"], i.kwargs["tick"]["n"])
        for name, i in instances.items()
        if name.startswith("t_tick#")
    )
    assert ticks == [(number, n) for number in range(PROCESSES) for n in range(FIRES)]


def test_recording_runner_leaves_instances_scheduled(manager_session):
    """What the manager hands a runner: the instance saved as scheduled, first."""
    manager_session.update_configuration({"t": {"after": ["go"], "run": "tests.add", "using": "tests-recording"}})
    ready = manager_session.fire("go", {"n": 1})
    assert [i.status for i in ready] == ["scheduled"]
    assert statuses(manager_session) == {"t#0": "scheduled"}
    assert "t#0" in RecordingRunner.payloads(manager_session.storage.uid)
