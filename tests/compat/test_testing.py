"""triggers.testing: the mixin and the test tasks, used as a 2.x application's tests use them."""

from __future__ import annotations

import os
import sys
import uuid
from typing import Any

from django.test import SimpleTestCase, override_settings

from tests.compat import path_tasks
from tests.runner_support import behave
from tests.settings import REDIS_URL, reachable
from triggers import CacheStorageBackend, TriggerManager
from triggers.task import TriggerTask, UnknownTaskError, get_task
from triggers.tasks.runners import ThreadingTaskRunner
from triggers.testing import (
    DevNullTask,
    FailingTask,
    PassThruTask,
    SelfRetryingTask,
    SelfSkippingTask,
    TriggerManagerTestCaseMixin,
    name_matches_classpath,
)


def path(cls: type) -> str:
    return f"{cls.__module__}.{cls.__qualname__}"


# The class-level setting says "sync"; the mixin makes tasks run in threads all the same.
@override_settings(TRIGGERS_DEFAULT_RUNNER="sync")
class TriggerManagerMixinTestCase(TriggerManagerTestCaseMixin, SimpleTestCase):
    cache_alias = "locmem"

    def setUp(self) -> None:
        super().setUp()
        self.uid = "compat-" + uuid.uuid4().hex
        self.manager = TriggerManager(CacheStorageBackend(self.uid, cache=self.cache_alias))

    def configure(self, **tasks: dict[str, Any]) -> None:
        self.manager.update_configuration(tasks)

    def test_tasks_run_in_task_threads(self) -> None:
        self.configure(t_where={"after": ["go"], "run": path_tasks.ThreadReporter.name})
        self.manager.fire("go")
        self.assertInstanceFinished("t_where#0", {"task_thread": True})

    def test_pass_thru_task_returns_its_kwargs(self) -> None:
        self.configure(
            t_echo={"after": ["go"], "run": PassThruTask.name, "withParams": {"go": {"b": 2}}}
        )
        self.manager.fire("go", {"a": 1})
        self.assertInstanceFinished("t_echo#0", {"kwargs": {"go": {"a": 1, "b": 2}}})

    def test_dev_null_task_and_a_cascade(self) -> None:
        self.configure(
            t_first={"after": ["go"], "run": PassThruTask.name},
            t_second={"after": ["t_first"], "run": DevNullTask.name},
        )
        self.manager.fire("go", {"n": 1})
        self.assertInstanceFinished("t_first#0", {"kwargs": {"go": {"n": 1}}})
        self.assertInstanceFinished("t_second#0", {})
        self.assertInstanceFinished("t_second#0")
        self.assertUnresolvedTasks([])
        self.assertUnresolvedInstances([])

    def test_failing_task(self) -> None:
        self.configure(t_fail={"after": ["go"], "run": FailingTask.name})
        self.manager.fire("go")
        instance = self.assertInstanceFailed("t_fail#0", RuntimeError)
        self.assertIn("FailingTask always does", instance.metadata["exceptionInfo"])
        # A base class matches too, as with assertRaises.
        self.assertInstanceFailed("t_fail#0", Exception)
        self.assertUnresolvedInstances(["t_fail#0"])

    def test_self_skipping_task_records_its_kwargs(self) -> None:
        self.configure(t_skip={"after": ["go"], "run": SelfSkippingTask.name})
        self.manager.fire("go", {"n": 1})
        skipped = self.assertInstanceSkipped("t_skip#0")
        self.assertEqual(skipped.metadata["kwargs"], {"go": {"n": 1}})
        self.assertUnresolvedTasks([])

    def test_self_retrying_task_retries_up_to_its_limit_then_finishes(self) -> None:
        self.configure(t_retry={"after": ["go"], "run": SelfRetryingTask.name})
        self.manager.fire("go")
        last = SelfRetryingTask.max_retries
        for number in range(last):
            self.assertInstanceReplayed(f"t_retry#{number}")
        self.assertInstanceFinished(f"t_retry#{last}", {"count": last})
        self.assertInstanceMissing(f"t_retry#{last + 1}")

    def test_self_retrying_task_takes_its_max_from_with_params(self) -> None:
        # Past the class's max_retries (3): the withParams value rules, as in 2.x.
        self.configure(
            t_retry={"after": ["go"], "run": SelfRetryingTask.name, "withParams": {"retries": {"max": 5}}},
            t_once={"after": ["go"], "run": SelfRetryingTask.name, "withParams": {"retries": {"max": 0}}},
        )
        self.manager.fire("go")
        for number in range(5):
            self.assertInstanceReplayed(f"t_retry#{number}")
        self.assertInstanceFinished("t_retry#5", {"count": 5})
        self.assertInstanceFinished("t_once#0", {"count": 0})

    def test_a_retry_cooldown_is_not_waited_out(self) -> None:
        # 90 s is past the mixin's own 60 s wait for task threads: waited out, the
        # test would fail there (as 2.x's threading runner, the mixin replays at once).
        self.assertFalse(ThreadingTaskRunner.honours_cooldown)
        self.configure(
            t_retry={"after": ["go"], "run": "tests.behave", "withParams": behave(retry_until=1, cooldown=90)}
        )
        self.manager.fire("go")
        self.assertInstanceReplayed("t_retry#0")
        finished = self.assertInstanceFinished("t_retry#1")
        self.assertEqual(finished.cooldown, 90)  # recorded all the same

    def test_self_retrying_task_refuses_a_bad_max(self) -> None:
        self.configure(
            t_retry={"after": ["go"], "run": SelfRetryingTask.name, "withParams": {"retries": {"max": "many"}}}
        )
        self.manager.fire("go")
        failed = self.assertInstanceFailed("t_retry#0", ValueError)
        self.assertIn("'many'", failed.metadata["exceptionInfo"])
        self.assertInstanceMissing("t_retry#1")

    def test_abandoned_unstarted_and_unresolved(self) -> None:
        self.configure(
            t_both={"after": ["a", "b"], "run": DevNullTask.name},
            t_unless={"after": ["a"], "unless": ["stop"], "run": DevNullTask.name},
            t_never={"after": ["nothing"], "run": DevNullTask.name},
        )
        self.manager.fire("stop")
        self.assertInstanceAbandoned("t_unless#0")
        self.manager.fire("a")
        self.assertInstanceUnstarted("t_both#0")
        self.assertUnresolvedTasks(["t_never", "t_both"])
        self.assertUnresolvedInstances(["t_both#0"])
        self.manager.fire("b")
        self.assertInstanceFinished("t_both#0")
        self.assertUnresolvedTasks(["t_never"])
        self.assertInstanceMissing("t_never#0")

    def test_assertions_read_the_session_afresh(self) -> None:
        self.configure(t_echo={"after": ["go"], "run": PassThruTask.name})
        self.manager.fire("go")
        self.assertInstanceFinished("t_echo#0")
        # Another manager (another process, say) moves the session on; ours has it loaded.
        other = TriggerManager(CacheStorageBackend(self.uid, cache=self.cache_alias))
        other.update_configuration({"t_more": {"after": ["more"], "run": DevNullTask.name}})
        other.fire("more")
        self.assertInstanceFinished("t_more#0", {})

    def test_task_named_by_dotted_path(self) -> None:
        self.assertNotIn(path(path_tasks.Unregistered), _registered_names())
        self.configure(t_path={"after": ["go"], "run": path(path_tasks.Unregistered)})
        self.manager.fire("go")
        self.assertInstanceFinished("t_path#0", {"resolved": "by path"})

    def test_dotted_path_to_something_else_is_an_unknown_task(self) -> None:
        self.configure(
            t_class={"after": ["go"], "run": path(path_tasks.NotATask)},
            t_function={"after": ["go"], "run": "os.path.join"},
            t_nowhere={"after": ["go"], "run": "tests.compat.no_such_module.Task"},
        )
        self.manager.fire("go")
        for name in ("t_class#0", "t_function#0", "t_nowhere#0"):
            self.assertInstanceFailed(name, UnknownTaskError)

    def test_dotted_path_of_a_module_not_imported_yet(self) -> None:
        from triggers.task import registered_tasks

        sys.modules.pop("tests.compat.lazy_tasks", None)
        registered_tasks.pop("tests.compat.lazy_tasks.Lazy", None)
        self.configure(t_lazy={"after": ["go"], "run": "tests.compat.lazy_tasks.Lazy"})
        self.manager.fire("go")
        self.assertInstanceFinished("t_lazy#0", {"lazy": True})

    def test_a_celery_task_runs_in_a_thread(self) -> None:
        self.configure(t_celery={"after": ["go"], "run": DevNullTask.name, "using": "celery"})
        self.manager.fire("go")
        self.assertInstanceFinished("t_celery#0", {})


class TriggerManagerMixinOnRedisTestCase(TriggerManagerMixinTestCase):
    """The same, on a cache that other processes share."""

    cache_alias = "redis"

    def setUp(self) -> None:
        from urllib.parse import urlparse

        url = urlparse(REDIS_URL)
        if not reachable(url.hostname or "127.0.0.1", url.port or 6379):
            if os.environ.get("TRIGGERS_TEST_REQUIRE_SERVICES") == "1":
                self.fail(f"redis is not reachable at {REDIS_URL}")
            self.skipTest(f"redis is not reachable at {REDIS_URL}")
        super().setUp()


def _registered_names() -> list[str]:
    from triggers.task import registered_tasks

    return sorted(registered_tasks)


class TestTasksTestCase(SimpleTestCase):
    def test_names_are_their_dotted_paths(self) -> None:
        for cls in (PassThruTask, DevNullTask, FailingTask, SelfSkippingTask, SelfRetryingTask):
            with self.subTest(task=cls.__name__):
                self.assertEqual(cls.name, f"triggers.testing.{cls.__name__}")
                self.assertIs(get_task(cls.name), cls)

    def test_name_matches_classpath(self) -> None:
        @name_matches_classpath
        class Renamed(TriggerTask):
            name = "tests.compat.renamed_before"

            def _run(self, context: Any) -> dict[str, Any]:
                return {}

        self.assertEqual(Renamed.name, path(Renamed))
        self.assertIs(get_task(path(Renamed)), Renamed)
        self.assertIs(get_task("tests.compat.renamed_before"), Renamed)

    def test_name_matches_classpath_on_a_variant_without_run(self) -> None:
        # A subclass that only changes settings registers nothing by itself.
        @name_matches_classpath
        class PatientRetrier(SelfRetryingTask):
            max_retries = 1

        self.assertIs(get_task(path(PatientRetrier)), PatientRetrier)

    def test_name_matches_classpath_takes_only_tasks(self) -> None:
        with self.assertRaises(TypeError):
            name_matches_classpath(path_tasks.NotATask)  # type: ignore[type-var]


@override_settings(TRIGGERS_DEFAULT_RUNNER="sync")
class ExceptionContextTestCase(TriggerManagerTestCaseMixin, SimpleTestCase):
    """What ``with_context`` attached is recorded as the failure's ``exceptionContext``."""

    def setUp(self) -> None:
        super().setUp()
        self.manager = TriggerManager(CacheStorageBackend("compat-" + uuid.uuid4().hex, cache="locmem"))

    def test_the_attached_context_is_recorded(self) -> None:
        self.manager.update_configuration(
            {"t_import": {"after": ["go"], "run": path_tasks.FailingWithContext.name}}
        )
        self.manager.fire("go")
        self.assertInstanceFailed("t_import#0", ValueError)
        metadata = self.manager.storage["t_import#0"].metadata
        recorded = metadata["exceptionContext"]
        # Exactly what was attached (as in 2.x); a value that cannot be stored is its repr.
        self.assertEqual(sorted(recorded), ["handle", "row"])
        self.assertEqual(recorded["row"], 3)
        self.assertTrue(recorded["handle"].startswith("<function"), recorded["handle"])
        # The package's own keys are under "failure".
        self.assertEqual(metadata["failure"]["phase"], "run")


class CooldownOutsideTheMixinTestCase(SimpleTestCase):
    def test_the_threading_runner_honours_cooldowns_outside_tests(self) -> None:
        # The mixin's change is undone once its test ends.
        self.assertTrue(ThreadingTaskRunner.honours_cooldown)
