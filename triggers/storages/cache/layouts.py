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
from .formats import EARLIER_PAGED_FORMATS

__all__ = ["Layout", "Layouts"]


@dataclass(frozen=True)
class Layout:
    """One layout's operations, bound to one storage object."""

    #: "split", "single" or "paged", as the setting names it
    name: str
    #: the key an instance record is read and written under (as the driver names it)
    record_key: Callable[[str], str]
    #: the key that stores an instance record on the server (a page holds many)
    stored_key: Callable[[str], str]
    #: what a head of this layout is marked with (None: no head, one whole value)
    head_format: str | None
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
    #: whether records are entries of pages (``stored_key`` names a record's page)
    pages: bool = False


@dataclass(frozen=True)
class Layouts:
    """Every layout, bound to one storage object."""

    split: Layout
    single: Layout
    paged: Layout

    def named(self, name: str) -> Layout:
        """The layout a setting or argument names (already checked)."""
        return next(layout for layout in (self.split, self.single, self.paged) if layout.name == name)

    def marked(self, head_format: str) -> Layout:
        """The layout of a head marked ``head_format`` (one this version writes)."""
        if head_format == self.paged.head_format or head_format in EARLIER_PAGED_FORMATS:
            return self.paged
        return self.split
