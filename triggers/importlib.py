"""Importing an object by its dotted path, for application code (``triggers.importlib.dl``).

This is a helper for code an application writes, such as settings that
name a class. Triggers itself never calls it with stored data: a task
configuration's ``run`` is looked up among registered tasks only (see
:func:`triggers.task.get_task`), so whatever a cache holds cannot choose
which code is imported.

2.x shim: kept so that code written for Triggers 2.x keeps working.
"""

from __future__ import annotations

import importlib
from typing import Any

from .errors import TriggersError

__all__ = [
    "DottedPathAttributeNotFound",
    "DottedPathError",
    "DottedPathModuleNotFound",
    "InvalidDottedPath",
    "dl",
]


class DottedPathError(TriggersError, ImportError):
    """A dotted path names no importable object; ``dotted_path`` is the path asked for."""

    def __init__(self, dotted_path: str, reason: str, module: str | None = None) -> None:
        self.dotted_path = dotted_path
        super().__init__(f"cannot import {dotted_path!r}: {reason}", name=module)


class DottedPathModuleNotFound(DottedPathError):
    """No module of the path exists; ``name`` is the missing module."""


class DottedPathAttributeNotFound(DottedPathError):
    """The module exists but holds nothing under the rest of the path."""


class InvalidDottedPath(TriggersError, ValueError):
    """What was given is not a dotted path at all (empty, no dot, not a string)."""

    def __init__(self, dotted_path: object) -> None:
        self.dotted_path = dotted_path
        super().__init__(
            f"{dotted_path!r} is not a dotted path ('package.module.Name' or 'package.module:Name')"
        )


def _split(dotted_path: object) -> list[tuple[str, list[str]]]:
    """The (module, attribute names) readings of a path, the longest module first."""
    if not isinstance(dotted_path, str):
        raise InvalidDottedPath(dotted_path)
    module, colon, attrs = dotted_path.partition(":")
    if colon:
        names = attrs.split(".")
        if not all(module.split(".")) or not all(names):
            raise InvalidDottedPath(dotted_path)
        return [(module, names)]
    parts = dotted_path.split(".")
    if len(parts) < 2 or not all(parts):
        raise InvalidDottedPath(dotted_path)
    return [(".".join(parts[:i]), parts[i:]) for i in range(len(parts) - 1, 0, -1)]


def _import_module(name: str) -> tuple[Any | None, str | None]:
    """(the module, None), or (None, the name of the module that does not exist)."""
    try:
        return importlib.import_module(name), None
    except ModuleNotFoundError as exc:
        if exc.name is not None and (name == exc.name or name.startswith(exc.name + ".")):
            return None, exc.name
        raise  # the module exists; something it imports is missing


def dl(dotted_path: str) -> Any:
    """The object at ``'package.module.Name'`` or ``'package.module:Name'``.

    Without a colon, the longest prefix that is a module is imported and the
    rest is read as attributes (so ``'pkg.mod.Class.attr'`` works too).
    Raises :class:`DottedPathModuleNotFound` or :class:`DottedPathAttributeNotFound`
    (both ImportErrors naming the path) when nothing matches; an error raised
    while an existing module runs its code propagates unchanged.
    """
    missing: str | None = None
    for module_name, names in _split(dotted_path):
        module, absent = _import_module(module_name)
        if module is None:
            missing = missing or absent
            continue
        found: Any = module
        for depth, attr in enumerate(names):
            try:
                found = getattr(found, attr)
            except AttributeError:
                if depth == 0 and missing is not None:
                    # The name a longer reading imported as a module: it is that module.
                    break
                owner = ".".join([module_name, *names[:depth]])
                raise DottedPathAttributeNotFound(
                    dotted_path, f"{owner!r} has no attribute {attr!r}", module_name
                ) from None
        else:
            return found
        break
    raise DottedPathModuleNotFound(dotted_path, f"no module named {missing!r}", missing)
