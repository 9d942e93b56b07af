"""Checks of the instance API and of the queries, on sessions read back from the backend."""

from __future__ import annotations

from typing import Any

from ..errors import UnknownInstance, UnknownTask
from ..storages.base import BaseTriggerStorage
from ..types import TaskInstance
from .base import KitBase
from .support import (
    UNRESOLVED_INSTANCES,
    UNRESOLVED_LOGS,
    UNRESOLVED_TASKS,
    check,
    check_equal,
    check_raises,
    instance_fields,
    names,
    sample_configuration,
    sample_instances,
)

__all__ = ["InstanceChecks"]


class InstanceChecks(KitBase):
    """create_instance, clone_instance, lookups, iteration and the unresolved queries."""

    def test_create_instance_numbers_per_task(self) -> None:
        with self.kit_session() as session:
            session.write(lambda storage: storage.update_configuration(sample_configuration()))

            def create(storage: BaseTriggerStorage) -> None:
                first = storage.create_instance("t_idle")
                check_equal(str(first), "t_idle#0 (unstarted)", "a new instance")
                check_equal(storage.create_instance(storage.tasks["t_idle"]).name, "t_idle#1",
                            "the second instance of t_idle (made from its TaskConfig)")
                check_equal(storage.create_instance("t_import").name, "t_import#0",
                            "the first instance of another task")

            session.write(create)
            # Numbering goes on from what was saved.
            later = session.write(lambda storage: storage.create_instance("t_idle"))
            check_equal(names(later), ["t_idle#0", "t_idle#1", "t_idle#2", "t_import#0"],
                        "the instances after two saves")
            check_equal(names(session.open()), names(later), "the instances read back")

    def test_clone_instance(self) -> None:
        def clone(storage: BaseTriggerStorage) -> None:
            original = storage["t_score#2"]
            copied = storage.clone_instance(original)
            check_equal(copied.name, "t_score#4", "the clone of t_score#2")
            copied.kwargs["t_import"]["changed"] = True
            check_equal(original.kwargs, {"t_import": {}}, "the original's kwargs after changing the clone's")
            storage.clone_instance("t_score#4")

        with self.kit_session() as session:
            session.populate()
            session.write(clone)
            loaded = session.open()
            first, second = loaded["t_score#4"], loaded["t_score#5"]
            check_equal(instance_fields(first), {
                "name": "t_score#4", "task": "t_score", "status": TaskInstance.STATUS_UNSTARTED,
                "kwargs": {"t_import": {"changed": True}}, "metadata": {"depth": 1, "parent": "t_score#2"},
                "abandonState": ["cancel"],
            }, "the clone of t_score#2 read back")
            check_equal(second.metadata, {"depth": 2, "parent": "t_score#4"}, "the clone of the clone")
            check_equal(loaded["t_score#2"].kwargs, {"t_import": {}}, "the original read back")

    def test_lookups_and_iteration(self) -> None:
        with self.kit_session() as session:
            session.populate()
            storage = session.open()
            expected = sorted(name for name, _, _ in sample_instances())
            check_equal(names(storage), expected, "iter(storage)")
            check_equal(names(storage.iter_instances()), expected, "storage.iter_instances()")
            check_equal(storage["t_score#1"].name, "t_score#1", "storage['t_score#1']")
            not_names: list[Any] = ["t_score#9", "t_score", "", None, ["t_score#1"]]
            for missing in not_names:
                error = check_raises(UnknownInstance, lambda: storage[missing], f"storage[{missing!r}]")  # noqa: B023
                check(isinstance(error, KeyError), "UnknownInstance is a KeyError")
            by_name = storage.instances_of_task("t_report")
            check_equal(sorted(by_name), ["t_report#0", "t_report#1", "t_report#2"], "instances_of_task('t_report')")
            check(all(by_name[name] is storage[name] for name in by_name), "instances_of_task gives the instances")
            check_equal(sorted(storage.instances_of_task(storage.tasks["t_score"])),
                        ["t_score#0", "t_score#1", "t_score#2", "t_score#3"], "instances_of_task(TaskConfig)")
            check_equal(storage.instances_of_task("t_idle"), {}, "instances_of_task of a task with none")
            no_task: Any = None
            check_raises(UnknownTask, lambda: storage.instances_of_task(no_task), "instances_of_task(None)")

    def test_unresolved_queries(self) -> None:
        with self.kit_session() as session:
            written = session.populate()
            for storage, which in ((written, "the storage that saved"), (session.open(), "a new storage")):
                check_equal(names(storage.get_unresolved_tasks()), UNRESOLVED_TASKS,
                            f"get_unresolved_tasks() on {which}")
                check_equal(names(storage.get_unresolved_instances()), UNRESOLVED_INSTANCES,
                            f"get_unresolved_instances() on {which}")
                check_equal(names(storage.get_instances_with_unresolved_logs()), UNRESOLVED_LOGS,
                            f"get_instances_with_unresolved_logs() on {which}")

    def test_unresolved_queries_follow_changes(self) -> None:
        def resolve(storage: BaseTriggerStorage) -> None:
            for name in UNRESOLVED_INSTANCES:
                storage[name].status = TaskInstance.STATUS_SKIPPED
            storage.create_instance("t_idle", status=TaskInstance.STATUS_FINISHED)

        with self.kit_session() as session:
            session.populate()
            session.write(resolve)
            storage = session.open()
            check_equal(names(storage.get_unresolved_tasks()), [], "unresolved tasks once all are resolved")
            check_equal(names(storage.get_unresolved_instances()), [], "unresolved instances then")
            check_equal(names(storage.get_instances_with_unresolved_logs()), [],
                        "instances with unresolved logs (skipped ones have none)")
