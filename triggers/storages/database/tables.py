"""The database backend's models, imported on first use.

Django makes model classes only once its apps are loaded; reached through
this module, the models are imported when a storage first reads or writes,
so the backend's class itself imports anywhere (a registry listing every
backend, a process not set up yet).
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from ...models import Configuration, Instance, Session, TaskDefinition

__all__ = ["Configuration", "Instance", "Session", "TaskDefinition"]


def __getattr__(name: str) -> Any:
    if name in __all__:
        return getattr(importlib.import_module("triggers.models"), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
