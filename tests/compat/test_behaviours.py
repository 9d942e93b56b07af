"""2.x behaviours this package keeps: lastModified, dict-like state, manager subclasses, fire()."""

from __future__ import annotations

import uuid
import warnings

from django.test import SimpleTestCase, override_settings

from triggers import CacheStorageBackend, TriggerManager
from triggers.testing import DevNullTask, PassThruTask, TriggerManagerTestCaseMixin
from triggers.types import TaskInstance


@override_settings(TRIGGERS_DEFAULT_RUNNER="sync")
class LastModifiedTestCase(TriggerManagerTestCaseMixin, SimpleTestCase):
    def setUp(self) -> None:
        super().setUp()
        self.manager = TriggerManager(CacheStorageBackend("compat-" + uuid.uuid4().hex, cache="locmem"))
        self.manager.update_configuration({"t_a": {"after": ["go"], "run": DevNullTask.name}})
        self.manager.fire("go")
        self.assertInstanceFinished("t_a#0")

    def stamp(self) -> object:
        self.manager.storage.invalidate_cache()
        return self.manager.storage["t_a#0"].metadata["timestamps"]["lastModified"]

    def test_update_instance_metadata_bumps_last_modified(self) -> None:
        before = self.stamp()
        self.manager.update_instance_metadata("t_a#0", {"note": 1})
        self.assertGreater(self.stamp(), before)

    def test_mark_instance_logs_resolved_bumps_last_modified(self) -> None:
        before = self.stamp()
        self.manager.mark_instance_logs_resolved("t_a#0")
        self.assertGreater(self.stamp(), before)


class DictLikeStateTestCase(SimpleTestCase):
    """``storage.instances`` and ``storage.tasks`` answer as the dicts of 2.x did."""

    def setUp(self) -> None:
        uid = "compat-" + uuid.uuid4().hex
        storage = CacheStorageBackend(uid, cache="locmem")
        with storage.acquire_lock():
            storage.update_configuration(
                {"t_a": {"after": ["go"], "run": PassThruTask.name}, "t_b": {"after": ["t_a"], "run": "x"}}
            )
            storage.create_instance("t_a")
            storage.create_instance("t_a")
            storage.save()
        self.storage = CacheStorageBackend(uid, cache="locmem")  # read back, as a new process would

    def test_instances(self) -> None:
        instances = self.storage.instances
        self.assertEqual(instances["t_a#1"].name, "t_a#1")
        self.assertEqual(sorted(instances), ["t_a#0", "t_a#1"])
        self.assertIn("t_a#0", instances)
        self.assertNotIn("t_a#5", instances)
        self.assertIsNone(instances.get("t_a#5"))
        self.assertEqual(sorted(name for name, _ in instances.items()), ["t_a#0", "t_a#1"])
        self.assertTrue(all(isinstance(i, TaskInstance) for i in instances.values()))
        self.assertEqual(len(instances), 2)

    def test_tasks(self) -> None:
        tasks = self.storage.tasks
        self.assertEqual(tasks["t_a"].run, PassThruTask.name)
        self.assertEqual(sorted(tasks), ["t_a", "t_b"])
        self.assertIn("t_b", tasks)
        self.assertIsNone(tasks.get("t_c"))
        self.assertEqual(sorted(k for k, _ in tasks.items()), ["t_a", "t_b"])
        self.assertEqual(sorted(c.name for c in tasks.values()), ["t_a", "t_b"])

    def test_collection_get_from_task_and_create_instance(self) -> None:
        instances = self.storage.instances
        config = self.storage.tasks["t_a"]
        self.assertEqual([i.name for i in instances.get_from_task(config)], ["t_a#0", "t_a#1"])
        created = instances.create_instance(self.storage.tasks["t_b"])
        self.assertEqual(created.name, "t_b#0")
        self.assertIn("t_b#0", instances)


class MyAppManager(TriggerManager):
    """A 2.x-style subclass nobody registered."""

    scheduled: list[str] = []

    def _post_fire(self, trigger_name: str, tasks_scheduled: list[TaskInstance]) -> None:
        MyAppManager.scheduled.extend(i.name for i in tasks_scheduled)


@override_settings(TRIGGERS_DEFAULT_RUNNER="sync")
class UnregisteredManagerTestCase(TriggerManagerTestCaseMixin, SimpleTestCase):
    def test_works_and_warns_once(self) -> None:
        self.manager = MyAppManager(CacheStorageBackend("compat-" + uuid.uuid4().hex, cache="locmem"))
        self.manager.update_configuration(
            {"t_a": {"after": ["go"], "run": PassThruTask.name}, "t_b": {"after": ["t_a"], "run": DevNullTask.name}}
        )
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            ready = self.manager.fire("go", {"n": 1})
            self.manager.fire("other")
        self.assertEqual([i.name for i in ready], ["t_a#0"])  # 2.x returned None; a list is fine
        self.assertInstanceFinished("t_a#0", {"kwargs": {"go": {"n": 1}}})
        self.assertInstanceFinished("t_b#0")
        messages = [str(w.message) for w in caught if issubclass(w.category, RuntimeWarning)]
        self.assertEqual(len(messages), 1, messages)
        self.assertIn("MyAppManager", messages[0])
        self.assertIn("t_a#0", MyAppManager.scheduled)
