"""What the storage conformance kit checks with: a sample session, assertions,
and the storage objects a check opens (closed when it ends).

Plain functions only: nothing here imports pytest or needs a test runner.
"""

from __future__ import annotations

import datetime
import logging
import pprint
from collections.abc import Callable
from typing import Any, NoReturn

from ..storages.base import BaseTriggerStorage
from ..types import TaskConfig, TaskInstance

#: a naive UTC datetime with microseconds, as instances' timestamps hold them
STAMP = datetime.datetime(2024, 1, 2, 3, 4, 5, 678901)


def sample_configuration() -> dict[str, Any]:
    """Task definitions using every field of a TaskConfig, unknown keys included.

    Every task waits for a trigger that no check fires (``never``) or for
    several, so that no instance ever becomes ready: no runner is involved.
    """
    return {
        "t_import": {
            "after": ["start", "upload"],
            "run": "kit.import_subject",
            "using": "kit-runner",
            "withParams": {"weight": 2, "nested": {"list": [1, [2, 3]], "none": None}},
            "description": "an extra key, kept and written back",
            "options": {"retries": 3, "tags": ["a", "b"]},
        },
        "t_score": {
            "after": ["t_import"],
            "andEvery": "pageSaved",
            "unless": ["cancel", "abort"],
            "run": "kit.score_page",
        },
        "t_report": {"after": ["t_score", "approve"], "run": "kit.report", "unless": []},
        "t_idle": {"after": ["never"], "run": "kit.idle"},
    }


def sample_instances() -> list[tuple[str, str, dict[str, Any]]]:
    """``(expected name, task, create_instance keywords)``, in the order to create them.

    Every status, kwargs, abandon states and metadata of every kind the
    package reads (timestamps, log levels, results, exceptions, depth...).
    """
    error, stamps = logging.ERROR, {"created": STAMP, "lastModified": STAMP}
    page = {"t_import": {}, "pageSaved": {"page": 2, "at": STAMP}}
    return [
        ("t_import#0", "t_import", {"kwargs": {"start": {"subject": 7, "tags": ["x", "y"]}}}),
        ("t_import#1", "t_import", {
            "status": "running",
            "kwargs": {"start": {}, "upload": {"file": "a.csv"}},
            "metadata": {"actualKwargs": {"subject": 7}, "timestamps": {**stamps, "running": STAMP}},
        }),
        ("t_import#2", "t_import", {"status": "scheduled", "kwargs": {"start": {}, "upload": {}}}),
        ("t_import#3", "t_import", {
            "status": "failed",
            "metadata": {"logLevel": logging.WARNING, "exceptionType": "builtins.ValueError"},
        }),
        ("t_score#0", "t_score", {
            "status": "finished",
            "kwargs": {"t_import": {}, "pageSaved": {"page": 1}},
            "metadata": {"result": {"score": 3, "at": STAMP}, "logLevel": logging.INFO, "timestamps": stamps},
        }),
        ("t_score#1", "t_score", {
            "status": "failed",
            "kwargs": page,
            "metadata": {
                "logLevel": error,
                "exceptionInfo": "Traceback (most recent call last): ...",
                "exceptionContext": {"page": 2},
                "depth": 1,
                "parent": "t_score#0",
                "cooldown": 1.5,
            },
        }),
        ("t_score#2", "t_score", {"kwargs": {"t_import": {}}, "abandonState": {"cancel"}}),
        ("t_score#3", "t_score", {"status": "replayed", "metadata": {"logLevel": error}}),
        ("t_report#0", "t_report", {
            "status": "finished",
            "metadata": {"logLevel": logging.CRITICAL, "logsResolved": True},
        }),
        ("t_report#1", "t_report", {
            "status": "skipped",
            "metadata": {"logLevel": error, "cascade": False, "result": {}},
        }),
        ("t_report#2", "t_report", {"status": "abandoned", "abandonState": ["cancel", "abort"]}),
    ]


#: what the queries answer on the sample session (sorted names)
UNRESOLVED_TASKS = ["t_idle", "t_import", "t_score"]
UNRESOLVED_INSTANCES = ["t_import#0", "t_import#1", "t_import#2", "t_import#3", "t_score#1", "t_score#2"]
UNRESOLVED_LOGS = ["t_score#1"]


def sample_metadata() -> dict[str, Any]:
    """Session metadata of many kinds: datetimes, sets, tuples, nested values."""
    return {
        "note": "written by the conformance kit",
        "when": STAMP,
        "aware": datetime.datetime(2024, 1, 2, 3, 4, 5, tzinfo=datetime.timezone.utc),
        "day": datetime.date(2024, 1, 2),
        "tags": {"a", "b"},
        "frozen": frozenset({1, 2}),
        "nested": {"list": [1, [2, {"three": 3}]], "pair": (1, "two"), "none": None},
        "numbers": {"float": 1.5, "big": 2**70, "negative": -1},
        "text": "ünïcødé ✓",
    }


def sample_latest_kwargs() -> dict[str, Any]:
    return {"start": {"subject": 7}, "pageSaved": {"page": 2, "at": STAMP}, "cancel": {}}


def config_fields(config: TaskConfig) -> dict[str, Any]:
    """Every field of a task config, comparable."""
    return {
        "name": config.name,
        "after": sorted(config.after),
        "unless": sorted(config.unless),
        "run": config.run,
        "using": config.using,
        "withParams": config.with_params,
        "andEvery": config.and_every,
        "extra": config.extra,
    }


def instance_fields(instance: TaskInstance) -> dict[str, Any]:
    """Every stored field of an instance, comparable."""
    return {
        "name": instance.name,
        "task": instance.config.name,
        "status": instance.status,
        "kwargs": instance.kwargs,
        "metadata": instance.metadata,
        "abandonState": sorted(instance.abandon_state),
    }


def names(items: Any) -> list[str]:
    """The sorted names of task configs or instances."""
    return sorted(item.name for item in items)


# --------------------------------------------------------------------------- assertions


def fail(message: str) -> NoReturn:
    raise AssertionError(message)


def check(condition: object, message: str) -> None:
    if not condition:
        fail(message)


def check_equal(actual: object, expected: object, what: str) -> None:
    if actual != expected:
        fail(f"{what}:\nexpected {pprint.pformat(expected)}\n     got {pprint.pformat(actual)}")


def check_raises(
    error: type[BaseException], call: Callable[[], object], what: str
) -> BaseException:
    """The exception ``call()`` raises, which must be an ``error``."""
    try:
        call()
    except error as exc:
        return exc
    except Exception as exc:
        fail(f"{what}: expected {error.__name__}, got {type(exc).__name__}: {exc}")
    fail(f"{what}: expected {error.__name__}, nothing was raised")


# --------------------------------------------------------------------------- sessions


class Session:
    """One session uid of a check, and the storage objects opened on it."""

    def __init__(self, make: Callable[[str], BaseTriggerStorage], uid: str) -> None:
        self.uid = uid
        self._make = make
        self._opened: list[BaseTriggerStorage] = []

    def open(self) -> BaseTriggerStorage:
        """A new storage object on the session: nothing loaded, it reads what is saved now."""
        storage = self._make(self.uid)
        if not isinstance(storage, BaseTriggerStorage):
            fail(f"make_storage() must return a BaseTriggerStorage, not {storage!r}")
        self._opened.append(storage)
        return storage

    def write(self, change: Callable[[BaseTriggerStorage], object]) -> BaseTriggerStorage:
        """``change(storage)`` on a new storage object, under the lock, then saved."""
        storage = self.open()
        with storage.acquire_lock(ttl=60):
            change(storage)
            storage.save()
        return storage

    def populate(self) -> BaseTriggerStorage:
        """Write the whole sample session (configuration, instances, metadata) in one save."""
        return self.write(fill)

    def close_all(self) -> None:
        for storage in self._opened:
            storage.close()
        self._opened.clear()


def fill(storage: BaseTriggerStorage) -> None:
    """Put the sample session into ``storage`` (loaded state only: not saved)."""
    storage.update_configuration(sample_configuration())
    for name, task, fields in sample_instances():
        created = storage.create_instance(task, **fields)
        check_equal(created.name, name, f"the name of the new instance of {task}")
    storage.metadata.update(sample_metadata())
    storage.latest_kwargs.update(sample_latest_kwargs())
