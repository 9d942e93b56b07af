"""What the mixin does around each test, and what its failures say (run on nested test cases)."""

from __future__ import annotations

import unittest
import uuid
from typing import Any

from django.conf import settings
from django.test import override_settings

import triggers.task
import triggers.task_classes
from tests.compat import path_tasks
from triggers import CacheStorageBackend, TriggerManager
from triggers.runners import ThreadingTaskRunner, task_runners
from triggers.testing import FailingTask, PassThruTask, TriggerManagerTestCaseMixin

#: What the nested cases saw while they ran.
SEEN: dict[str, Any] = {}


class Nested(TriggerManagerTestCaseMixin, unittest.TestCase):
    """Cases the tests below run themselves; never collected on their own."""

    __test__ = False

    def setUp(self) -> None:
        self.manager = TriggerManager(
            CacheStorageBackend("compat-" + uuid.uuid4().hex, cache="locmem")
        )
        self.manager.update_configuration(
            {
                "t_fail": {"after": ["go"], "run": FailingTask.name},
                "t_echo": {"after": ["go"], "run": PassThruTask.name},
                "t_block": {"after": ["block"], "run": path_tasks.Blocking.name},
            }
        )

    def test_records_the_patches(self) -> None:
        SEEN["default_runner"] = settings.TRIGGERS_DEFAULT_RUNNER
        SEEN["runner_aliases"] = settings.TRIGGERS_RUNNER_ALIASES
        SEEN["by_path"] = triggers.task.get_task(f"{path_tasks.__name__}.Unregistered")
        SEEN["runner_class"] = task_runners.get_class("celery")

    def test_finished_but_failed(self) -> None:
        self.manager.fire("go")
        self.assertInstanceFinished("t_fail#0")

    def test_wrong_result(self) -> None:
        self.manager.fire("go", {"x": 1})
        self.assertInstanceFinished("t_echo#0", {"kwargs": {"go": {"x": 2}}})

    def test_wrong_exception(self) -> None:
        self.manager.fire("go")
        self.assertInstanceFailed("t_fail#0", KeyError)

    def test_unknown_instance(self) -> None:
        self.manager.fire("go")
        self.assertInstanceUnstarted("t_nope#0")

    def test_not_missing(self) -> None:
        self.manager.fire("go")
        self.assertInstanceMissing("t_echo#0")

    def test_unresolved(self) -> None:
        self.manager.fire("go")
        self.assertUnresolvedInstances([])

    def test_leaves_a_task_running(self) -> None:
        path_tasks.RELEASE.clear()
        self.manager.fire("block")
        SEEN["uid"] = self.manager.storage.uid
        self.addCleanup(path_tasks.RELEASE.set)


class NoManager(TriggerManagerTestCaseMixin, unittest.TestCase):
    __test__ = False

    def test_forgot_the_manager(self) -> None:
        self.assertInstanceMissing("t#0")


def run_case(case: unittest.TestCase) -> unittest.TestResult:
    result = unittest.TestResult()
    unittest.TestSuite([case]).run(result)
    return result


class MixinTestCase(unittest.TestCase):
    def failure_of(self, case: unittest.TestCase) -> str:
        result = run_case(case)
        self.assertEqual(result.errors, [])
        self.assertEqual(len(result.failures), 1, result.failures)
        return result.failures[0][1]

    def test_patches_hold_while_a_test_runs_and_are_undone_after(self) -> None:
        original_get_task = triggers.task_classes.get_task
        with override_settings(TRIGGERS_DEFAULT_RUNNER="sync"):
            result = run_case(Nested("test_records_the_patches"))
            self.assertTrue(result.wasSuccessful(), result.errors + result.failures)
            self.assertEqual(SEEN["default_runner"], "threading")
            self.assertEqual(SEEN["runner_aliases"], {"celery": "threading"})
            self.assertIs(SEEN["by_path"], path_tasks.Unregistered)
            self.assertIs(SEEN["runner_class"], ThreadingTaskRunner)
            # All undone.
            self.assertEqual(settings.TRIGGERS_DEFAULT_RUNNER, "sync")
        # Through settings and a documented hook: nothing of the package is patched.
        self.assertIs(triggers.task_classes.get_task, original_get_task)
        self.assertNotIn("get_class", vars(task_runners))
        self.assertFalse(hasattr(settings, "TRIGGERS_RUNNER_ALIASES"))
        self.assertIsNone(triggers.task_classes.task_fallbacks.resolve("tests.compat.path_tasks.Unregistered"))
        self.assertIsNot(task_runners.get_class("celery"), ThreadingTaskRunner)
        with self.assertRaises(triggers.task.UnknownTaskError):
            triggers.task.get_task(f"{path_tasks.__name__}.Unregistered")

    def test_runner_aliases_of_the_settings_are_kept_and_follow_the_threaded_runners(self) -> None:
        with override_settings(TRIGGERS_RUNNER_ALIASES={"fast": "celery", "slow": "sync"}):
            result = run_case(Nested("test_records_the_patches"))
            self.assertTrue(result.wasSuccessful(), result.errors + result.failures)
        self.assertEqual(
            SEEN["runner_aliases"], {"fast": "threading", "slow": "sync", "celery": "threading"}
        )

    def test_task_threads_are_waited_for_after_the_test(self) -> None:
        result = run_case(Nested("test_leaves_a_task_running"))
        self.assertTrue(result.wasSuccessful(), result.errors + result.failures)
        self.assertEqual(ThreadingTaskRunner.running_threads(), [])
        stored = CacheStorageBackend(SEEN["uid"], cache="locmem")["t_block#0"]
        self.assertEqual(stored.status, "finished")
        self.assertEqual(stored.metadata["result"], {"released": True})

    def test_status_failure_shows_status_metadata_and_traceback(self) -> None:
        message = self.failure_of(Nested("test_finished_but_failed"))
        self.assertIn("expected t_fail#0 to be finished", message)
        self.assertIn("t_fail#0 is failed", message)
        self.assertIn("'exceptionType': 'builtins.RuntimeError'", message)
        self.assertIn("FailingTask always does", message)  # the traceback
        self.assertIn("kwargs: {'go': {}}", message)

    def test_result_failure_shows_both_results(self) -> None:
        message = self.failure_of(Nested("test_wrong_result"))
        self.assertIn("result of t_echo#0", message)
        self.assertIn("'x': 1", message)
        self.assertIn("'x': 2", message)

    def test_exception_failure_names_both_types(self) -> None:
        message = self.failure_of(Nested("test_wrong_exception"))
        self.assertIn("to have failed with builtins.KeyError, not builtins.RuntimeError", message)

    def test_unknown_instance_lists_the_session(self) -> None:
        message = self.failure_of(Nested("test_unknown_instance"))
        self.assertIn("no task instance 't_nope#0'", message)
        self.assertIn("t_echo#0, t_fail#0", message)

    def test_missing_failure_describes_the_instance(self) -> None:
        message = self.failure_of(Nested("test_not_missing"))
        self.assertIn("expected no instance t_echo#0", message)
        self.assertIn("t_echo#0 is finished", message)

    def test_unresolved_failure_lists_the_instances(self) -> None:
        message = self.failure_of(Nested("test_unresolved"))
        self.assertIn("t_fail#0 (failed)", message)
        self.assertIn("t_echo#0 (finished)", message)

    def test_a_test_that_sets_no_manager_is_told_so(self) -> None:
        message = self.failure_of(NoManager("test_forgot_the_manager"))
        self.assertIn("NoManager must set self.manager", message)
