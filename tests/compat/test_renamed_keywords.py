"""The 2.x keyword names of manager, storage and locking calls keep working."""

from __future__ import annotations

import uuid

from django.core.cache import caches
from django.test import SimpleTestCase, override_settings

from triggers import CacheStorageBackend, TriggerManager
from triggers.locking import resolve_cache
from triggers.testing import FailingTask, PassThruTask, TriggerManagerTestCaseMixin


@override_settings(TRIGGERS_DEFAULT_RUNNER="sync")
class ManagerKeywordsTestCase(TriggerManagerTestCaseMixin, SimpleTestCase):
    def setUp(self) -> None:
        super().setUp()
        self.manager = TriggerManager(CacheStorageBackend("compat-" + uuid.uuid4().hex, cache="locmem"))
        self.manager.update_configuration(
            configuration={
                "t_ok": {"after": ["go"], "run": PassThruTask.name},
                "t_bad": {"after": ["go"], "run": FailingTask.name},
            }
        )
        self.manager.fire("go")
        self.assertInstanceFinished("t_ok#0")
        self.assertInstanceFailed("t_bad#0", RuntimeError)

    def test_update_instance_status_task_instance(self) -> None:
        self.manager.update_instance_status(task_instance="t_ok#0", status="abandoned")
        self.assertInstanceAbandoned("t_ok#0")

    def test_update_instance_metadata_task_instance(self) -> None:
        self.manager.update_instance_metadata(task_instance="t_ok#0", metadata={"note": "seen"})
        self.assertEqual(self.manager.storage["t_ok#0"].metadata["note"], "seen")

    def test_mark_instance_logs_resolved_task_instance(self) -> None:
        self.manager.mark_instance_logs_resolved(task_instance="t_bad#0")
        self.assertTrue(self.manager.storage["t_bad#0"].metadata["logsResolved"])

    def test_replay_failed_instance_failed_instance(self) -> None:
        clone = self.manager.replay_failed_instance(failed_instance="t_bad#0")
        self.assertInstanceReplayed("t_bad#0")
        self.assertEqual(clone.name, "t_bad#1")

    def test_skip_failed_instance_failed_instance(self) -> None:
        self.manager.skip_failed_instance(failed_instance="t_bad#0")
        self.assertInstanceSkipped("t_bad#0")

    def test_the_old_and_the_new_name_together_is_a_type_error(self) -> None:
        with self.assertRaisesRegex(TypeError, "instance_or_name"):
            self.manager.update_instance_status("t_ok#0", task_instance="t_ok#0", status="abandoned")
        self.assertInstanceFinished("t_ok#0")


class StorageKeywordsTestCase(SimpleTestCase):
    def setUp(self) -> None:
        self.storage = CacheStorageBackend("compat-" + uuid.uuid4().hex, cache="locmem")
        self.storage.update_configuration({"t_a": {"after": ["go"], "run": PassThruTask.name}})

    def test_create_instance_task_config(self) -> None:
        instance = self.storage.create_instance(task_config=self.storage.tasks["t_a"])
        self.assertEqual(instance.name, "t_a#0")

    def test_instances_of_task_task_config(self) -> None:
        self.storage.create_instance("t_a")
        self.assertEqual(list(self.storage.instances_of_task(task_config="t_a")), ["t_a#0"])

    def test_clone_instance_task_instance(self) -> None:
        self.storage.create_instance("t_a")
        clone = self.storage.clone_instance(task_instance="t_a#0")
        self.assertEqual(clone.metadata["parent"], "t_a#0")

    def test_close_takes_any_arguments(self) -> None:
        self.storage.close()
        self.storage.close(True, reason="2.x passed some")


class LockingKeywordsTestCase(SimpleTestCase):
    def test_resolve_cache_backend(self) -> None:
        self.assertIs(resolve_cache(backend="locmem"), caches["locmem"])
