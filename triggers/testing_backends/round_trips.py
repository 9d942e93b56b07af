"""Checks that every part of a session comes back from a save as it went in."""

from __future__ import annotations

import copy
import logging

from ..storages.base import BaseTriggerStorage
from ..types import TaskConfig, TaskInstance
from .base import KitBase
from .support import (
    check,
    check_equal,
    config_fields,
    instance_fields,
    sample_configuration,
    sample_instances,
    sample_latest_kwargs,
    sample_metadata,
)

__all__ = ["RoundTripChecks"]


class RoundTripChecks(KitBase):
    """Save, then read with a new storage object: nothing lost, nothing changed."""

    def test_new_session_is_empty(self) -> None:
        with self.kit_session() as session:
            storage = session.open()
            check_equal(storage.tasks, {}, "the tasks of a session never saved")
            check_equal(list(storage), [], "the instances of a session never saved")
            check_equal(storage.latest_kwargs, {}, "latest_kwargs of a session never saved")
            check_equal(storage.metadata, {"latest_kwargs": {}}, "metadata of a session never saved")
            check_equal(
                storage.debug_repr(),
                {"tasks": {}, "instances": {}, "metas": {"latest_kwargs": {}}},
                "debug_repr() of a session never saved",
            )

    def test_configuration_round_trip(self) -> None:
        with self.kit_session() as session:
            session.write(lambda storage: storage.update_configuration(sample_configuration()))
            tasks = session.open().tasks
            definitions = sample_configuration()
            check_equal(sorted(tasks), sorted(definitions), "the saved task names")
            for name, definition in definitions.items():
                loaded = tasks[name]
                check(isinstance(loaded, TaskConfig), f"tasks[{name!r}] is {loaded!r}")
                expected = config_fields(TaskConfig.from_definition(name, definition))
                check_equal(config_fields(loaded), expected, f"task {name} after a save")

    def test_update_configuration_merges_by_name(self) -> None:
        with self.kit_session() as session:
            storage = session.open()
            with storage.acquire_lock(ttl=60):
                storage.update_configuration(sample_configuration())
                check_equal(session.open().tasks, {}, "the tasks saved before save() was called")
                storage.save()
            changed = {"after": ["go"], "run": "kit.changed", "withParams": {"v": 2}}
            added = {"after": ["go"], "run": "kit.added"}

            def merge(storage: BaseTriggerStorage) -> None:
                storage.update_configuration({"t_idle": changed, "t_new": added})

            session.write(merge)
            tasks = session.open().tasks
            expected = {**sample_configuration(), "t_idle": changed, "t_new": added}
            check_equal(sorted(tasks), sorted(expected), "the tasks after a second configuration")
            for name, definition in expected.items():
                want = config_fields(TaskConfig.from_definition(name, definition))
                check_equal(config_fields(tasks[name]), want, f"task {name} after the merge")

    def _populated_instances(self) -> dict[str, TaskInstance]:
        with self.kit_session() as session:
            session.populate()
            return {instance.name: instance for instance in session.open().iter_instances()}

    def test_instances_round_trip(self) -> None:
        loaded = self._populated_instances()
        expected = sample_instances()
        check_equal(sorted(loaded), sorted(name for name, _, _ in expected), "the saved instances")
        for name, task, fields in expected:
            instance = loaded[name]
            want = {
                "name": name,
                "task": task,
                "status": fields.get("status", TaskInstance.STATUS_UNSTARTED),
                "kwargs": fields.get("kwargs", {}),
                "metadata": fields.get("metadata", {}),
                "abandonState": sorted(fields.get("abandonState", [])),
            }
            check_equal(instance_fields(instance), want, f"instance {name} after a save")
            check_equal(
                config_fields(instance.config),
                config_fields(TaskConfig.from_definition(task, sample_configuration()[task])),
                f"the config of instance {name} after a save",
            )

    def test_instance_properties_round_trip(self) -> None:
        loaded = self._populated_instances()
        failed = loaded["t_score#1"]
        check_equal(failed.log_level, logging.ERROR, "log_level of t_score#1")
        check_equal((failed.depth, failed.cooldown), (1, 1.5), "depth and cooldown of t_score#1")
        check_equal(loaded["t_report#0"].logs_resolved, True, "logs_resolved of t_report#0")
        check_equal(loaded["t_score#0"].last_modified, sample_instances()[4][2]["metadata"]["timestamps"]["lastModified"],
                    "last_modified of t_score#0")
        check_equal(loaded["t_report#2"].abandon_state, {"cancel", "abort"}, "abandon_state of t_report#2")
        check(not loaded["t_score#2"].can_abandon, "t_score#2 waits for 'abort' before it can be abandoned")

    def test_session_metadata_round_trip(self) -> None:
        with self.kit_session() as session:
            session.populate()
            storage = session.open()
            metadata = storage.metadata
            for key, value in sample_metadata().items():
                check(key in metadata, f"metadata[{key!r}] was lost on save")
                check_equal(metadata[key], value, f"metadata[{key!r}] after a save")
                check_equal(type(metadata[key]), type(value), f"the type of metadata[{key!r}]")
            check_equal(storage.latest_kwargs, sample_latest_kwargs(), "latest_kwargs after a save")
            check_equal(metadata["latest_kwargs"], sample_latest_kwargs(), "metadata['latest_kwargs']")

    def test_whole_session_round_trip(self) -> None:
        with self.kit_session() as session:
            written = session.populate().debug_repr()
            check_equal(session.open().debug_repr(), written, "debug_repr() of a new storage object")

    def test_changes_round_trip(self) -> None:
        """A second save writes changes to stored instances and metadata, and new instances."""

        def change(storage: BaseTriggerStorage) -> None:
            instance = storage["t_import#0"]
            instance.status = TaskInstance.STATUS_FINISHED
            instance.metadata["result"] = {"done": True}
            instance.kwargs["upload"] = {"file": "b.csv"}
            storage["t_score#2"].abandon_state.add("abort")
            storage.create_instance("t_idle", kwargs={"never": {}})
            storage.metadata["note"] = "changed"
            storage.latest_kwargs["upload"] = {"file": "b.csv"}

        with self.kit_session() as session:
            session.populate()
            written = copy.deepcopy(session.write(change).debug_repr())
            reread = session.open()
            check_equal(reread.debug_repr(), written, "the session after a second save")
            check_equal(reread["t_import#0"].status, TaskInstance.STATUS_FINISHED, "t_import#0's new status")
            check_equal(reread["t_idle#0"].kwargs, {"never": {}}, "the instance made by the second save")
