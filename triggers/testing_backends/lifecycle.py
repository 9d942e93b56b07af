"""Checks of locking, saving, caching, debug_repr, close and delete."""

from __future__ import annotations

import threading
import unittest

from ..errors import LockAcquisitionFailed
from ..storages.base import BaseTriggerStorage
from .base import KitBase
from .support import (
    Session,
    check,
    check_equal,
    check_raises,
    sample_configuration,
    sample_instances,
)

__all__ = ["LifecycleChecks"]


class LifecycleChecks(KitBase):
    """What a storage object does besides holding the session."""

    def test_lock_is_reentrant_and_reported(self) -> None:
        with self.kit_session() as session:
            storage = session.open()
            check(not storage.has_lock, "has_lock before acquire_lock()")
            with storage.acquire_lock(ttl=60) as held:
                check(held is storage, "acquire_lock() yields the storage")
                check(storage.has_lock, "has_lock inside acquire_lock()")
                storage.update_configuration(sample_configuration())
                with storage.acquire_lock(ttl=60):
                    check(storage.has_lock, "has_lock inside a nested acquire_lock()")
                    check_equal(sorted(storage.tasks), sorted(sample_configuration()),
                                "what a nested acquire_lock() keeps loaded")
                check(storage.has_lock, "has_lock after leaving a nested acquire_lock()")
                storage.save()
            check(not storage.has_lock, "has_lock after acquire_lock()")
            check_equal(sorted(session.open().tasks), sorted(sample_configuration()), "the tasks saved")

    def test_save_needs_the_lock(self) -> None:
        with self.kit_session() as session:
            storage = session.open()
            storage.update_configuration(sample_configuration())
            check_raises(RuntimeError, storage.save, "save() without the lock")
            check_equal(session.open().tasks, {}, "the tasks stored after a refused save()")

    def test_lock_is_exclusive_across_threads(self) -> None:
        with self.kit_session() as session:
            storage = session.open()
            outcome: list[BaseException | None] = []

            def try_lock() -> None:
                other = self.make_storage(session.uid)  # made in the thread that uses it
                try:
                    with other.acquire_lock(block=False):
                        outcome.append(None)
                except BaseException as exc:
                    outcome.append(exc)
                finally:
                    other.close()

            with storage.acquire_lock(ttl=60):
                thread = threading.Thread(target=try_lock)
                thread.start()
                thread.join(self.kit_process_timeout)
            check(not thread.is_alive(), "acquire_lock(block=False) did not return in another thread")
            check_equal(len(outcome), 1, "attempts made by the other thread")
            check(isinstance(outcome[0], LockAcquisitionFailed),
                  f"acquire_lock(block=False) while another holds the lock gave {outcome[0]!r},"
                  " not LockAcquisitionFailed")

    def test_acquire_lock_reads_the_latest_state(self) -> None:
        with self.kit_session() as session:
            reader = session.open()
            check_equal(reader.tasks, {}, "the tasks first read")
            session.write(lambda storage: storage.update_configuration(sample_configuration()))
            with reader.acquire_lock(ttl=60):
                check_equal(sorted(reader.tasks), sorted(sample_configuration()),
                            "the tasks read after taking the lock")

    def test_invalidate_cache_reads_again(self) -> None:
        with self.kit_session() as session:
            reader = session.open()
            check_equal(len(list(reader)), 0, "the instances first read")
            session.populate()
            reader.invalidate_cache()
            check_equal(len(list(reader)), len(sample_instances()), "the instances read after invalidate_cache()")
            check_equal(reader.debug_repr(), session.open().debug_repr(), "the session read again")

    def test_debug_repr_is_a_copy(self) -> None:
        with self.kit_session() as session:
            session.populate()
            storage = session.open()
            shown = storage.debug_repr()
            check_equal(sorted(shown), ["instances", "metas", "tasks"], "the keys of debug_repr()")
            shown["metas"]["latest_kwargs"]["start"]["subject"] = "changed"
            shown["instances"]["t_import#0"]["kwargs"].clear()
            shown["tasks"]["t_import"]["withParams"].clear()
            check_equal(storage.latest_kwargs["start"], {"subject": 7}, "latest_kwargs after changing debug_repr()")
            check_equal(storage["t_import#0"].kwargs["start"]["subject"], 7, "kwargs after changing debug_repr()")
            check_equal(storage.tasks["t_import"].with_params["weight"], 2, "withParams after changing debug_repr()")

    def test_close(self) -> None:
        with self.kit_session() as session:
            session.populate()
            storage = session.open()
            check_equal(len(list(storage)), len(sample_instances()), "the instances read")
            storage.close()
            check_equal(len(list(session.open())), len(sample_instances()),
                        "the instances read by a new object after close()")

    def _delete_or_skip(self, storage: BaseTriggerStorage) -> bool:
        try:
            return storage.delete()
        except NotImplementedError:
            raise unittest.SkipTest(
                f"{type(storage).__name__}.delete() raises NotImplementedError: the backend cannot delete sessions"
            ) from None

    def test_delete(self) -> None:
        with self.kit_session() as session:
            deleted = self._delete_or_skip(session.open())
            check_equal(deleted, False, "delete() of a session never saved")
            self._check_delete_of_stored(session)

    def _check_delete_of_stored(self, session: Session) -> None:
        session.populate()
        check_equal(session.open().delete(), True, "delete() of a stored session")
        gone = session.open()
        check_equal((gone.tasks, list(gone), gone.metadata), ({}, [], {"latest_kwargs": {}}),
                    "the session after delete()")
        check_equal(session.open().delete(), False, "delete() of a deleted session")
        session.write(lambda storage: storage.update_configuration({"t": {"after": ["go"], "run": "kit.t"}}))
        again = session.open()
        check_equal((sorted(again.tasks), list(again)), (["t"], []), "the uid used again after delete()")
