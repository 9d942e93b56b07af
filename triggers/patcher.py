"""Temporary changes to objects that undo themselves (what 2.x tests patch with).

A patcher is a context manager, or is driven by hand with :meth:`BasePatcher.start`
and :meth:`BasePatcher.stop` (from ``setUp`` and ``addCleanup``, say).
:class:`AttrPatcher` sets attributes and, on exit, puts back exactly what
was there: the previous value where the object had one of its own, nothing
where it had none (the attribute is deleted, so an inherited value shows
again instead of being frozen as a copy).

2.x shim: kept so that code written for Triggers 2.x keeps working.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Mapping
from types import TracebackType
from typing import Any, TypeVar

__all__ = ["AttrPatcher", "BasePatcher"]

#: Stands for "the object had no attribute of its own under that name".
_ABSENT = object()

_P = TypeVar("_P", bound="BasePatcher")


class BasePatcher(ABC):
    """Something applied by :meth:`start` and undone by :meth:`stop`, once each.

    Subclasses implement :meth:`_apply` and :meth:`_restore`. Starting a
    patcher that is already started, or stopping one that is not, raises
    RuntimeError: either would lose track of what to restore.
    """

    def __init__(self) -> None:
        self._active = False

    @property
    def is_active(self) -> bool:
        """Whether the patch is applied now."""
        return self._active

    def start(self: _P) -> _P:
        if self._active:
            raise RuntimeError(f"{self!r} is already started")
        self._apply()
        self._active = True
        return self

    def stop(self) -> None:
        if not self._active:
            raise RuntimeError(f"{self!r} is not started")
        self._active = False
        self._restore()

    @abstractmethod
    def _apply(self) -> None:
        """Make the change, remembering what undoes it."""

    @abstractmethod
    def _restore(self) -> None:
        """Undo what :meth:`_apply` did."""

    def __enter__(self: _P) -> _P:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()


class AttrPatcher(BasePatcher):
    """Sets attributes of ``target`` while active: ``AttrPatcher(obj, name=value, ...)``.

    The attributes may also be given as a mapping, ``AttrPatcher(obj, {"name": value})``
    (for names that are not valid keywords). What the object holds itself is
    saved raw, so a ``staticmethod`` or ``classmethod`` of a class comes back as
    it was; attributes are restored in the reverse order they were set.
    """

    def __init__(
        self, target: object, values: Mapping[str, Any] | None = None, /, **attrs: Any
    ) -> None:
        super().__init__()
        self.target = target
        self.values: dict[str, Any] = {**(values or {}), **attrs}
        if not self.values:
            raise ValueError("AttrPatcher needs at least one attribute to set")
        self._saved: list[tuple[str, Any]] = []

    def _own_value(self, name: str) -> Any:
        """What ``target`` holds under ``name`` itself, or _ABSENT."""
        own = getattr(self.target, "__dict__", None)
        if isinstance(own, Mapping):
            return own.get(name, _ABSENT)
        # No instance dict (slots, built-ins): whatever getattr finds is its own.
        return getattr(self.target, name, _ABSENT)

    def _apply(self) -> None:
        self._saved = []
        try:
            for name, value in self.values.items():
                previous = self._own_value(name)
                setattr(self.target, name, value)
                self._saved.append((name, previous))
        except BaseException:
            self._restore()
            raise

    def _restore(self) -> None:
        while self._saved:
            name, previous = self._saved.pop()
            if previous is _ABSENT:
                if self._own_value(name) is not _ABSENT:  # unless the code under test deleted it
                    delattr(self.target, name)
            else:
                setattr(self.target, name, previous)

    def __repr__(self) -> str:
        names = ", ".join(sorted(self.values))
        return f"<{type(self).__name__} {self.target!r}: {names}>"
