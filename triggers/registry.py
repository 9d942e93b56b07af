"""Registries that map a key to a class, filled from entry point groups.

A registry loads its group lazily, on first use, so that a plugin module may
import any part of this package at its top without an import cycle. The
package's three registries live here, in a module that imports nothing else
of the package but its errors and settings: the manager, the runners and the
task code find each other through them at run time, never by importing each other.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from importlib.metadata import EntryPoint, entry_points
from typing import Any, Generic, TypeVar

from .conf import runner_alias
from .errors import TriggersError

T = TypeVar("T")

BRAND_ATTRIBUTE = "triggers__registry_key"


class UnknownRegistryKey(TriggersError, KeyError):
    """A registry has no class under the requested key."""

    def __init__(self, key: str, group: str, known: list[str]) -> None:
        self.key = key
        self.group = group
        self.known = known
        super().__init__(key)

    def __str__(self) -> str:
        return (
            f"no entry point {self.key!r} in group {self.group!r}"
            f" (registered: {', '.join(self.known) or 'none'})"
        )


class PluginLoadError(TriggersError, ImportError):
    """An entry point's class could not be imported; the cause is chained."""

    def __init__(self, key: str, group: str, target: str, cause: BaseException) -> None:
        self.key = key
        self.group = group
        self.target = target
        super().__init__(
            f"entry point {key!r} = {target!r} in group {group!r} could not be loaded:"
            f" {type(cause).__name__}: {cause}"
        )


class EntryPointRegistry(Generic[T]):
    """Classes registered under one entry point group, each loaded on first use.

    The group's entry points are listed once; a class is imported only when
    its key is asked for (or when every class is, by :meth:`items`), so a
    plugin that fails to import breaks its own key only, with an error that
    names it.
    """

    def __init__(self, group: str) -> None:
        self.group = group
        self._entry_points: dict[str, EntryPoint] | None = None
        self._classes: dict[str, type[T]] = {}
        self._lock = threading.RLock()

    def _listed(self) -> dict[str, EntryPoint]:
        with self._lock:
            if self._entry_points is None:
                listed: dict[str, EntryPoint] = {}
                for ep in entry_points(group=self.group):
                    # The first distribution found wins, as importlib orders them.
                    listed.setdefault(ep.name, ep)
                self._entry_points = listed
            return self._entry_points

    def _load_key(self, key: str) -> type[T]:
        with self._lock:
            listed = self._listed()
            known = self._classes.get(key)
            if known is not None:
                if BRAND_ATTRIBUTE not in known.__dict__:
                    brand(known, key)  # seeded straight into the dict, as 2.x tests do
                return known
            ep = listed.get(key)
            if ep is None:
                raise UnknownRegistryKey(key, self.group, self.keys())
            try:
                cls: type[T] = ep.load()
            except Exception as exc:
                raise PluginLoadError(key, self.group, ep.value, exc) from exc
            brand(cls, key)
            self._classes[key] = cls
            return cls

    def _load(self) -> dict[str, type[T]]:
        """Every class of the group, imported now if not yet."""
        with self._lock:
            for key in self._listed():
                self._load_key(key)
            return dict(self._classes)

    def register(self, key: str, cls: type[T]) -> type[T]:
        """Add ``cls`` under ``key`` without an entry point (scripts, tests).

        Forgotten by :meth:`refresh`; packages should use entry points.
        """
        with self._lock:
            self._listed()
            brand(cls, key)
            self._classes[key] = cls
        return cls

    def refresh(self) -> None:
        """Forget what was loaded; the next use reads the entry points again."""
        with self._lock:
            self._entry_points = None
            self._classes = {}

    def get_class(self, key: str) -> type[T]:
        """The class registered under ``key`` (UnknownRegistryKey if none is)."""
        return self._load_key(key)

    def get(self, key: str, *args: Any, **kwargs: Any) -> T:
        """A new instance of the class registered under ``key``."""
        return self.get_class(key)(*args, **kwargs)

    def items(self) -> list[tuple[str, type[T]]]:
        return sorted(self._load().items())

    def keys(self) -> list[str]:
        """The registered keys (no class is imported to list them)."""
        with self._lock:
            return sorted(set(self._listed()) | set(self._classes))

    def key_of(self, cls: type) -> str | None:
        """The key ``cls`` is registered under, or None."""
        key: str | None = cls.__dict__.get(BRAND_ATTRIBUTE)
        if key is not None:
            return key
        for name, registered in self._load().items():
            if registered is cls:
                return name
        return None

    def __contains__(self, key: object) -> bool:
        return key in self.keys()

    def __iter__(self) -> Iterator[str]:
        return iter(self.keys())

    def __len__(self) -> int:
        return len(self.keys())

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.group!r}>"

    # 2.x registries were class-registry's EntryPointClassRegistry; its callers use these.

    def __getitem__(self, key: str) -> T:
        """A new instance of the class under ``key``, made with no arguments (as in 2.x)."""
        return self.get(key)

    def values(self) -> list[type[T]]:
        """Every registered class, in the order of :meth:`keys`."""
        return [cls for _, cls in self.items()]

    @property
    def attr_name(self) -> str:
        """The class attribute that holds a class's key in 2.x (the brand is ``triggers__registry_key``)."""
        return "name"

    def _get_cache(self) -> dict[str, type[T]]:
        """The live dict of key -> class that the registry reads from (2.x tests seed it).

        Every class of the group that loads is in it first; one that fails to
        import is left out and still raises its own error when asked for. A
        class put in the dict is found by :meth:`get_class` and :meth:`key_of`
        at once, but carries no brand: use :meth:`register` to brand it too.
        :meth:`refresh` starts a new dict, as 2.x did.
        """
        with self._lock:
            for key in self._listed():
                try:
                    self._load_key(key)
                except PluginLoadError:
                    continue
            return self._classes


class RunnerRegistry(EntryPointRegistry[T]):
    """The task runners' registry: a key that ``TRIGGERS_RUNNER_ALIASES`` maps
    to another gets the class registered under that other key."""

    def get_class(self, key: str) -> type[T]:
        """The class of the runner that serves ``key`` (UnknownRegistryKey if none does)."""
        return self._load_key(runner_alias(key))


def brand(cls: type, key: str) -> None:
    """Mark ``cls`` with the key it is registered under."""
    setattr(cls, BRAND_ATTRIBUTE, key)


def registry_key(obj: object) -> str | None:
    """The brand of ``obj``'s class (or of ``obj`` if it is a class), if any."""
    cls = obj if isinstance(obj, type) else type(obj)
    return cls.__dict__.get(BRAND_ATTRIBUTE)


# The registries of the package. Typed loosely here (this module may not
# import the classes); the modules that define the base classes re-export
# them with the precise type.

#: storage backends, group ``triggers.storages``
storage_backends: EntryPointRegistry[Any] = EntryPointRegistry("triggers.storages")
#: trigger managers, group ``triggers.managers``
trigger_managers: EntryPointRegistry[Any] = EntryPointRegistry("triggers.managers")
#: task runners, group ``triggers.runners``
task_runners: EntryPointRegistry[Any] = RunnerRegistry("triggers.runners")
