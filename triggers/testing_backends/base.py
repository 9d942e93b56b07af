"""The part of the conformance kit a backend's test class fills in."""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import ClassVar

from ..storages.base import BaseTriggerStorage
from .support import Session

__all__ = ["KitBase"]


class KitBase:
    """Settings and hooks of the kit; the checks are in the mixins built on it."""

    #: whether the backend's lock (and storage) is shared by several processes;
    #: if so, :meth:`storage_factory` must be defined too
    locks_across_processes: ClassVar[bool] = False
    #: processes, and distinct triggers each fires, in the cross-process check
    kit_processes: ClassVar[int] = 4
    kit_fires_per_process: ClassVar[int] = 5
    #: seconds to wait for those processes (or a thread) before failing; a limit
    #: against hanging, never asserted as a timing
    kit_process_timeout: ClassVar[float] = 120.0

    def make_storage(self, uid: str) -> BaseTriggerStorage:
        """A new storage object of the backend under test for session ``uid``.

        Same backend and settings on every call: two objects made with the
        same uid are two views of one stored session.
        """
        raise NotImplementedError(f"{type(self).__name__} must define make_storage(self, uid)")

    def storage_factory(self) -> Callable[[str], BaseTriggerStorage]:
        """A picklable callable, ``factory(uid) -> storage``, that a forked child calls.

        Needed when ``locks_across_processes`` is true. A top-level function,
        or ``functools.partial(MyBackend, option=...)`` with plain arguments.
        """
        raise NotImplementedError(
            f"{type(self).__name__} sets locks_across_processes = True, so it must define"
            " storage_factory(self), returning a picklable callable factory(uid) -> storage"
        )

    def new_uid(self) -> str:
        """A session uid no other check uses."""
        return f"kit-{uuid.uuid4().hex}"

    @contextmanager
    def kit_session(self) -> Iterator[Session]:
        """A new session for one check; every storage opened on it is closed at the end."""
        session = Session(self.make_storage, self.new_uid())
        try:
            yield session
        finally:
            session.close_all()
