"""Checks of bad input (typed errors, stored state intact) and of the manager on the backend."""

from __future__ import annotations

import datetime
import logging
from collections.abc import Callable
from typing import Any

from ..errors import (
    InstanceNotFailed,
    InvalidArgument,
    InvalidSessionUid,
    InvalidTaskConfig,
    TriggersError,
    UnknownInstance,
    UnknownStatus,
    UnknownTask,
    UnserializableValue,
)
from ..manager import TriggerManager
from ..storages.base import BaseTriggerStorage
from ..types import TaskInstance
from .base import KitBase
from .support import Session, check, check_equal, check_raises

__all__ = ["InputChecks"]

_Call = Callable[[], object]


def storage_mistakes(storage: BaseTriggerStorage) -> list[tuple[type[TriggersError], _Call, str]]:
    """Calls with bad input on a loaded sample session, the error each must raise, and a label."""
    valid = {"after": ["go"], "run": "kit.ok"}
    not_a_mapping: Any = ["t_import"]
    not_a_name: Any = 42
    return [
        (InvalidTaskConfig, lambda: storage.update_configuration({"t_new": {"run": "kit.x"}}), "a task without 'after'"),
        (InvalidTaskConfig, lambda: storage.update_configuration({"t_ok": valid, "t_bad": 5}), "one bad task of two"),
        (InvalidTaskConfig, lambda: storage.update_configuration(not_a_mapping), "a configuration that is a list"),
        (UnknownTask, lambda: storage.create_instance("t_nope"), "create_instance of an unknown task"),
        (UnknownStatus, lambda: storage.create_instance("t_idle", status="bogus"), "an unknown status"),
        (InvalidArgument, lambda: storage.create_instance("t_idle", colour="red"), "an unknown keyword"),
        (InvalidArgument, lambda: storage.create_instance("t_idle", kwargs=5), "kwargs that are not a mapping"),
        (InvalidArgument, lambda: storage.create_instance("t_idle", metadata={"depth": -1}), "a negative depth"),
        (UnknownInstance, lambda: storage.clone_instance("t_nope#0"), "clone_instance of an unknown instance"),
        (UnknownTask, lambda: storage.instances_of_task(not_a_name), "instances_of_task(42)"),
    ]


def manager_mistakes(manager: TriggerManager) -> list[tuple[type[TriggersError], _Call, str]]:
    """Calls of the manager with bad input, the error each must raise, and a label."""
    none: Any = None
    five: Any = 5
    return [
        (InvalidArgument, lambda: manager.fire(none), "fire(None)"),
        (InvalidArgument, lambda: manager.fire("start", five), "fire() with kwargs that are not a mapping"),
        (UnknownStatus, lambda: manager.update_instance_status("t_import#0", "bogus"), "an unknown status"),
        (UnknownInstance, lambda: manager.update_instance_status("t_nope#0", "failed"), "an unknown instance"),
        (InstanceNotFailed, lambda: manager.replay_failed_instance("t_import#0"), "replaying an unstarted one"),
        (InstanceNotFailed, lambda: manager.skip_failed_instance("t_import#0"), "skipping an unstarted one"),
        (InvalidTaskConfig, lambda: manager.update_configuration({"t_x": {"after": "go"}}), "a task without 'run'"),
        (UnserializableValue, lambda: manager.fire("start", {"f": lambda: 0}), "kwargs that cannot be stored"),
    ]


class InputChecks(KitBase):
    """Bad input raises the library's typed errors and changes no stored state."""

    def _check_unchanged(self, session: Session, before: object, what: str) -> None:
        check_equal(session.open().debug_repr(), before, f"the stored session after {what}")

    def test_bad_uids(self) -> None:
        bad_uids: list[Any] = ["", "has space", "line\nbreak", "x" * 151, None, 42]
        for uid in bad_uids:
            check_raises(InvalidSessionUid, lambda: self.make_storage(uid), f"make_storage({uid!r})")  # noqa: B023

    def test_bad_input_to_the_storage(self) -> None:
        with self.kit_session() as session:
            session.populate()
            before = session.open().debug_repr()
            storage = session.open()
            with storage.acquire_lock(ttl=60):
                for error, call, what in storage_mistakes(storage):
                    check_raises(error, call, what)
                check_equal(storage.debug_repr(), before, "the loaded session after bad input")
                storage.save()
            self._check_unchanged(session, before, "bad input and a save")
            not_names: list[Any] = ["t_nope#0", "t_import", None]
            for missing in not_names:
                check_raises(UnknownInstance, lambda: storage[missing], f"storage[{missing!r}]")  # noqa: B023

    def test_unstorable_metadata_is_refused(self) -> None:
        with self.kit_session() as session:
            session.populate()
            before = session.open().debug_repr()
            storage = session.open()
            with storage.acquire_lock(ttl=60):
                storage.metadata["note"] = "not saved"
                storage.metadata["callback"] = lambda: 0
                check_raises(UnserializableValue, storage.save, "save() of metadata holding a lambda")
            self._check_unchanged(session, before, "a refused save")

    def test_bad_input_to_the_manager(self) -> None:
        with self.kit_session() as session:
            session.populate()
            before = session.open().debug_repr()
            manager = TriggerManager(session.open())
            for error, call, what in manager_mistakes(manager):
                check_raises(error, call, what)
            self._check_unchanged(session, before, "bad input to the manager")

    def test_manager_round_trip(self) -> None:
        config = {
            "t_wait": {"after": ["go", "never"], "unless": ["stop"], "run": "kit.wait"},
            "t_every": {"after": ["never"], "andEvery": "tick", "run": "kit.every"},
        }
        with self.kit_session() as session:
            manager = TriggerManager(session.open())
            manager.update_configuration(config)
            for trigger, kwargs in (("go", {"n": 1}), ("tick", {"n": 1}), ("tick", {"n": 2}), ("stop", {})):
                check_equal(manager.fire(trigger, kwargs), [], f"instances {trigger} made ready")
            manager.update_instance_status("t_every#0", TaskInstance.STATUS_FAILED,
                                           {"logLevel": logging.ERROR, "exceptionType": "builtins.ValueError"})
            check_equal(session.open()["t_every#0"].status, TaskInstance.STATUS_FAILED,
                        "the status update_instance_status() saved")
            manager.update_instance_metadata("t_every#1", {"note": {"kept": True}})
            manager.skip_failed_instance("t_every#0")
            manager.mark_instance_logs_resolved("t_every#0")
            storage = session.open()
            statuses = {instance.name: instance.status for instance in storage}
            check_equal(statuses, {"t_wait#0": "abandoned", "t_every#0": "skipped", "t_every#1": "unstarted"},
                        "the statuses the manager saved")
            check_equal(storage["t_wait#0"].kwargs, {"go": {"n": 1}}, "t_wait#0's kwargs")
            check_equal(storage["t_every#1"].kwargs, {"tick": {"n": 2}}, "t_every#1's kwargs")
            check_equal(storage.latest_kwargs, {"go": {"n": 1}, "tick": {"n": 2}, "stop": {}}, "latest_kwargs")
            skipped = storage["t_every#0"].metadata
            check_equal((skipped.get("logsResolved"), skipped.get("cascade")), (True, False), "t_every#0's metadata")
            check_equal(storage["t_every#1"].metadata.get("note"), {"kept": True}, "t_every#1's metadata")
            stamps = skipped.get("timestamps", {})
            check(set(stamps) >= {"created", "lastModified", "failed", "skipped"}, f"timestamps {stamps!r}")
            check(all(isinstance(when, datetime.datetime) and when.tzinfo is None for when in stamps.values()),
                  f"timestamps are naive datetimes: {stamps!r}")
