"""Registries that map a key to a class, filled from entry point groups.

A registry loads its group lazily, on first use, so that a plugin module may
import any part of this package at its top without an import cycle.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from importlib.metadata import entry_points
from typing import Any, Generic, TypeVar

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


class EntryPointRegistry(Generic[T]):
    """Classes registered under one entry point group, loaded on first use."""

    def __init__(self, group: str) -> None:
        self.group = group
        self._classes: dict[str, type[T]] | None = None
        self._lock = threading.RLock()

    def _load(self) -> dict[str, type[T]]:
        with self._lock:
            if self._classes is None:
                classes: dict[str, type[T]] = {}
                for ep in entry_points(group=self.group):
                    if ep.name in classes:
                        continue  # the first distribution found wins, as importlib orders them
                    cls = ep.load()
                    brand(cls, ep.name)
                    classes[ep.name] = cls
                self._classes = classes
            return self._classes

    def register(self, key: str, cls: type[T]) -> type[T]:
        """Add ``cls`` under ``key`` without an entry point (scripts, tests).

        Forgotten by :meth:`refresh`; packages should use entry points.
        """
        classes = self._load()
        with self._lock:
            brand(cls, key)
            classes[key] = cls
        return cls

    def refresh(self) -> None:
        """Forget what was loaded; the next use reads the entry points again."""
        with self._lock:
            self._classes = None

    def get_class(self, key: str) -> type[T]:
        classes = self._load()
        try:
            return classes[key]
        except KeyError:
            raise UnknownRegistryKey(key, self.group, sorted(classes)) from None

    def get(self, key: str, *args: Any, **kwargs: Any) -> T:
        """A new instance of the class registered under ``key``."""
        return self.get_class(key)(*args, **kwargs)

    def items(self) -> list[tuple[str, type[T]]]:
        return sorted(self._load().items())

    def keys(self) -> list[str]:
        return sorted(self._load())

    def key_of(self, cls: type) -> str | None:
        """The key ``cls`` is registered under, branding it if it was not yet."""
        key = cls.__dict__.get(BRAND_ATTRIBUTE)
        if key is not None:
            return key
        for name, registered in self._load().items():
            if registered is cls:
                return name
        return None

    def __contains__(self, key: object) -> bool:
        return key in self._load()

    def __iter__(self) -> Iterator[str]:
        return iter(self.keys())

    def __len__(self) -> int:
        return len(self._load())

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.group!r}>"


def brand(cls: type, key: str) -> None:
    """Mark ``cls`` with the key it is registered under."""
    setattr(cls, BRAND_ATTRIBUTE, key)


def registry_key(obj: object) -> str | None:
    """The brand of ``obj``'s class (or of ``obj`` if it is a class), if any."""
    cls = obj if isinstance(obj, type) else type(obj)
    return cls.__dict__.get(BRAND_ATTRIBUTE)
