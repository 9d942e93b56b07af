"""The instances of a session, by name and by task, read lazily where a backend allows."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Mapping, MutableMapping
from typing import Any

from ..types import TaskConfig, TaskInstance

__all__ = ["TaskInstanceCollection", "instance_name", "name_number"]

#: the most digits an instance name's number is read from: a longer one (a
#: hand-made name) makes it a name like any other, as Python refuses to
#: parse a number of over 4,300 digits
NUMBER_DIGITS = 18


def instance_name(task_name: str, number: int) -> str:
    return f"{task_name}#{number}"


def name_number(name: str) -> tuple[str, int] | None:
    """``(task, n)`` of a name ``task#n`` whose ``n`` is 1 to ``NUMBER_DIGITS``
    ASCII digits (a leading zero allowed); None for any other name."""
    task, sep, number = name.rpartition("#")
    if sep and number.isascii() and number.isdigit() and len(number) <= NUMBER_DIGITS:
        return task, int(number)
    return None


class TaskInstanceCollection(MutableMapping[str, TaskInstance]):
    """The instances of a session by name, grouped by task.

    Instances are named ``"{task}#{n}"``, so a task's names are kept as a
    count (names that do not follow the pattern, as a list). A backend may
    hand over only that index and a ``fetch`` function: instances are then
    read on first use, only those asked for.
    """

    def __init__(
        self,
        instances: Iterable[TaskInstance] = (),
        *,
        counts: Mapping[str, int] | None = None,
        irregular: Mapping[str, list[str]] | None = None,
        fetch: Callable[[list[str]], dict[str, TaskInstance]] | None = None,
    ) -> None:
        self._loaded: dict[str, TaskInstance] = {}
        self._loaded_by_task: dict[str, list[str]] = {}
        self._counts: dict[str, int] = dict(counts or {})
        self._irregular: dict[str, list[str]] = {t: list(n) for t, n in (irregular or {}).items()}
        self._task_of_irregular: dict[str, str] = {
            name: task for task, names in self._irregular.items() for name in names
        }
        self._fetch = fetch
        for instance in instances:
            self.add(instance)

    # -- index
    def task_of(self, name: object) -> str | None:
        """The task the index says instance ``name`` belongs to (None: not in the index)."""
        if not isinstance(name, str):
            return None
        task = self._task_of_irregular.get(name)
        if task is not None:
            return task
        # A regular name's number is in ASCII digits, without a leading zero
        # (int() alone would take others, and fails on some Unicode digits).
        numbered = name_number(name)
        if numbered is not None and instance_name(*numbered) == name:
            task, number = numbered
            if number < self._counts.get(task, 0):
                return task
        return None

    def indexed_task(self, name: str) -> str:
        """The task of instance ``name``, a name the index holds (what :meth:`task_of`
        gives, without first checking that it is held: once per record of a
        whole read)."""
        task = self._task_of_irregular.get(name)
        return name.rpartition("#")[0] if task is None else task

    def names_of_task(self, task_name: str) -> list[str]:
        names = [instance_name(task_name, n) for n in range(self._counts.get(task_name, 0))]
        return names + self._irregular.get(task_name, [])

    def count_of_task(self, task_name: str) -> int:
        return self._counts.get(task_name, 0) + len(self._irregular.get(task_name, ()))

    def next_number(self, task_name: str) -> int:
        """The number the task's next instance gets."""
        number = self._counts.get(task_name, 0)
        while instance_name(task_name, number) in self._task_of_irregular:
            number += 1
        return max(number, self.count_of_task(task_name))

    def tasks(self) -> list[str]:
        return sorted(set(self._counts) | set(self._irregular))

    def index(self) -> tuple[dict[str, int], dict[str, list[str]]]:
        """The name index: counts of regularly named instances, and the others."""
        return dict(self._counts), {t: list(n) for t, n in self._irregular.items() if n}

    # -- loading
    def _ensure(self, names: Iterable[str]) -> None:
        loaded = self._loaded
        missing = [name for name in names if name not in loaded] if loaded else list(names)
        if missing and self._fetch is not None:
            self._remember_all(self._fetch(missing).values())

    def _remember(self, instance: TaskInstance) -> None:
        self._remember_all((instance,))

    def _remember_all(self, instances: Iterable[TaskInstance]) -> None:
        # One loop for a batch: a whole read remembers every instance of a session.
        loaded, by_task = self._loaded, self._loaded_by_task
        for instance in instances:
            name = instance.name
            if name not in loaded:
                by_task.setdefault(instance.config.name, []).append(name)
            loaded[name] = instance

    def loaded_names_of_task(self, task_name: str) -> list[str]:
        """Names of the task's instances read (or created) so far."""
        return self._loaded_by_task.get(task_name, [])

    def load_all(self) -> None:
        """Read every instance not read yet, in one batch."""
        if self._fetch is not None and len(self._loaded) < len(self):
            self._ensure(iter(self))

    def every_instance(self) -> list[TaskInstance]:
        """Every instance, in the order of the names, read in one batch (each
        name made once: a session read whole may hold many)."""
        names = list(self)
        if self._fetch is not None and len(self._loaded) < len(names):
            self._ensure(names)
        loaded = self._loaded
        return [loaded[name] for name in names]

    @property
    def loaded(self) -> dict[str, TaskInstance]:
        """The instances read so far (all of them when nothing is lazy)."""
        return self._loaded

    # -- mapping
    def __getitem__(self, name: str) -> TaskInstance:
        try:
            return self._loaded[name]
        except KeyError:
            if self.task_of(name) is None:
                raise
        self._ensure([name])
        return self._loaded[name]

    def __setitem__(self, name: str, instance: TaskInstance) -> None:
        if name != instance.name:
            raise ValueError(f"instance {instance.name!r} cannot be stored as {name!r}")
        self.add(instance)

    def __delitem__(self, name: str) -> None:
        raise TypeError("task instances cannot be removed from a session")

    def __contains__(self, name: object) -> bool:
        return self.task_of(name) is not None

    def __iter__(self) -> Iterator[str]:
        for task in self.tasks():
            yield from self.names_of_task(task)

    def __len__(self) -> int:
        return sum(self._counts.values()) + len(self._task_of_irregular)

    def create(self, config: TaskConfig, **kwargs: Any) -> TaskInstance:
        """A new instance of ``config`` under the task's next free name."""
        task = config.name
        counted = self._counts.get(task, 0)
        number = self.next_number(task) if self._irregular else counted
        instance = TaskInstance(instance_name(task, number), config, **kwargs)
        if number == counted:
            self._counts[task] = number + 1
            self._remember(instance)
            return instance
        return self.add(instance)

    def add(self, instance: TaskInstance) -> TaskInstance:
        """Install ``instance``, replacing one of the same name."""
        task = instance.config.name
        name = instance.name
        known = self.task_of(name)
        if known is None:
            if name == instance_name(task, self._counts.get(task, 0)):
                self._counts[task] = self._counts.get(task, 0) + 1
            else:
                self._irregular.setdefault(task, []).append(name)
                self._task_of_irregular[name] = task
        elif known != task:
            raise ValueError(f"instance {name!r} belongs to task {known!r}, not {task!r}")
        self._remember(instance)
        return instance

    # -- by task
    def of_task(self, task_name: str) -> dict[str, TaskInstance]:
        names = self.names_of_task(task_name)
        self._ensure(names)
        return {name: self._loaded[name] for name in names}

    # -- the 2.x names
    def get_from_task(self, task_config: TaskConfig | str) -> list[TaskInstance]:
        """The task's instances, in order (as Triggers 2.x's collection gave them)."""
        name = task_config.name if isinstance(task_config, TaskConfig) else task_config
        return list(self.of_task(name).values())

    def create_instance(self, task_config: TaskConfig, **kwargs: Any) -> TaskInstance:
        """A new instance of ``task_config`` (2.x's name for :meth:`create`)."""
        return self.create(task_config, **kwargs)
