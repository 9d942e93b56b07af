"""A layout as one object: what reading and writing a session in it takes.

A storage object builds one :class:`Layout` per layout, bound to its own
methods (:mod:`.split` and :mod:`.single` define them), and chooses once:
the layout it writes (its ``layout`` argument or setting) and, at each
read, the layout the session was stored in. Nothing else asks which layout
is which by name.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from ...locking.writes import Writes
from ...types import TaskConfig, TaskInstance

__all__ = ["Layout", "Layouts"]


@dataclass(frozen=True)
class Layout:
    """One layout's operations, bound to one storage object."""

    #: "split" or "single", as the setting names it
    name: str
    #: install a stored value of this layout as the loaded session
    install: Callable[[dict[str, Any]], None]
    #: the writes of a save in this layout
    writes: Callable[[], Writes]
    #: the unstarted instances of a task, read as this layout allows
    schedulable_instances: Callable[[str], list[TaskInstance]]
    #: the tasks listening to a trigger (None: the base class's full scan)
    tasks_using_trigger: Callable[[str], list[TaskConfig]] | None
    #: whether a save in this layout is one whole value, as Triggers 2.x writes it
    whole_value: bool


@dataclass(frozen=True)
class Layouts:
    """Every layout, bound to one storage object."""

    split: Layout
    single: Layout

    def named(self, name: str) -> Layout:
        """The layout a setting or argument names (already checked)."""
        return self.split if name == self.split.name else self.single
