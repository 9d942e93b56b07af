"""The 2.x (class-registry) surface of the three registries: [key], values(), attr_name, _get_cache()."""

from __future__ import annotations

import unittest
import uuid

from triggers import CacheStorageBackend, TriggerManager, storage_backends, trigger_managers
from triggers.registry import EntryPointRegistry, PluginLoadError
from triggers.runners import BaseTaskRunner, ThreadingTaskRunner, task_runners
from triggers.types import TaskInstance

REGISTRIES: list[EntryPointRegistry[object]] = [storage_backends, trigger_managers, task_runners]  # type: ignore[list-item]


class SeededManager(TriggerManager):
    """A manager a 2.x test puts straight into the registry's cache."""

    name = "seeded"


class SeededRunner(BaseTaskRunner):
    name = "seeded-runner"

    def run(self, manager: TriggerManager, task_instance: TaskInstance) -> None:
        raise NotImplementedError


class LoadedByAnEntryPoint:
    """What a made-up entry point group of one test loads."""


class RegistryCompatTestCase(unittest.TestCase):
    def setUp(self) -> None:
        # Seeding is undone by a refresh, which reads the entry points again.
        for registry in REGISTRIES:
            self.addCleanup(registry.refresh)

    def test_getitem_makes_a_new_instance_with_no_arguments(self) -> None:
        runner = task_runners["threading"]
        self.assertIsInstance(runner, ThreadingTaskRunner)
        self.assertIsNot(task_runners["threading"], runner)
        with self.assertRaises(KeyError):
            task_runners["no-such-runner"]

    def test_values_are_the_classes_in_key_order(self) -> None:
        for registry in REGISTRIES:
            with self.subTest(group=registry.group):
                self.assertEqual(registry.values(), [cls for _, cls in registry.items()])
        self.assertIn(CacheStorageBackend, storage_backends.values())
        self.assertIn(TriggerManager, trigger_managers.values())
        self.assertIn(ThreadingTaskRunner, task_runners.values())

    def test_attr_name(self) -> None:
        for registry in REGISTRIES:
            self.assertEqual(registry.attr_name, "name")
        # What 2.x code reads with it: the class attribute that holds the key.
        self.assertEqual(getattr(ThreadingTaskRunner, task_runners.attr_name), "threading")

    def test_get_cache_holds_every_class_of_the_group(self) -> None:
        cache = storage_backends._get_cache()
        self.assertIsInstance(cache, dict)
        self.assertIs(cache["cache"], CacheStorageBackend)
        self.assertEqual(sorted(cache), storage_backends.keys())

    def test_seeding_the_cache_registers_the_class(self) -> None:
        trigger_managers._get_cache()["seeded"] = SeededManager
        self.assertIs(trigger_managers.get_class("seeded"), SeededManager)
        self.assertIn("seeded", trigger_managers.keys())
        self.assertIn(SeededManager, trigger_managers.values())
        storage = CacheStorageBackend("compat-" + uuid.uuid4().hex, cache="locmem")
        self.assertIsInstance(trigger_managers.get("seeded", storage), SeededManager)
        # What a runner puts in a task's payload, so the task rebuilds this class.
        self.assertEqual(trigger_managers.key_of(SeededManager), "seeded")

    def test_seeding_replaces_what_an_entry_point_gives(self) -> None:
        task_runners._get_cache()["threading"] = SeededRunner
        self.assertIs(task_runners.get_class("threading"), SeededRunner)
        task_runners.refresh()
        self.assertIs(task_runners.get_class("threading"), ThreadingTaskRunner)

    def test_refresh_starts_a_new_cache(self) -> None:
        seeded = task_runners._get_cache()
        seeded["seeded-runner"] = SeededRunner
        task_runners.refresh()
        fresh = task_runners._get_cache()
        self.assertIsNot(fresh, seeded)
        self.assertNotIn("seeded-runner", fresh)

    def test_a_plugin_that_fails_to_load_is_left_out(self) -> None:
        from importlib.metadata import EntryPoint

        registry: EntryPointRegistry[object] = EntryPointRegistry("triggers.compat-test-group")
        registry._entry_points = {
            "broken": EntryPoint("broken", "no_such_module_anywhere:Thing", registry.group),
            "fine": EntryPoint(
                "fine", "tests.compat.test_registries:LoadedByAnEntryPoint", registry.group
            ),
        }
        self.assertEqual(registry._get_cache(), {"fine": LoadedByAnEntryPoint})
        with self.assertRaises(PluginLoadError):
            registry.get_class("broken")
