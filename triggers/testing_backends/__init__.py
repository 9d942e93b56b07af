"""A conformance kit for storage backends: ``triggers.testing.StorageBackendTests``.

A backend's test class mixes :class:`StorageBackendTests` in and says how to
make a storage object; every ``test_*`` method of the kit then runs against
the backend, through the public API only. It works as a pytest class
(``class TestMyBackend(StorageBackendTests)``) and before
``unittest.TestCase`` or a Django ``TestCase``
(``class MyBackendTests(StorageBackendTests, TestCase)``).

The subclass defines:

``make_storage(self, uid)``
    A new storage object of the backend for session ``uid``, with the same
    settings on every call.

``locks_across_processes``
    A class attribute, false by default. Set it to true when the backend's
    lock and stored sessions are shared by several processes; the kit then
    forks processes that fire triggers into one session at the same time,
    and checks that nothing is lost. It also needs ``storage_factory(self)``:
    a picklable callable ``factory(uid) -> storage`` that a child calls,
    such as ``functools.partial(MyBackend, server="...")``.

A check the backend cannot take part in is skipped with the reason
(``unittest.SkipTest``, which pytest reports as a skip too): ``delete()``
where the backend raises ``NotImplementedError``; the cross-process check
where ``locks_across_processes`` is false. A failing check raises
``AssertionError`` naming what differs. The kit assumes a session the
backend has never seen is empty (no ``_load_default_configuration()``),
and makes no assertion about timings. It imports neither pytest nor Celery.
"""

from __future__ import annotations

from .base import KitBase
from .inputs import InputChecks
from .lifecycle import LifecycleChecks
from .processes import ProcessChecks
from .queries import InstanceChecks
from .round_trips import RoundTripChecks

__all__ = ["KitBase", "StorageBackendTests"]


class StorageBackendTests(RoundTripChecks, InstanceChecks, LifecycleChecks, InputChecks, ProcessChecks):
    """Every check of the kit; mix it into a test class that defines ``make_storage``."""
