"""The state a process keeps beyond any one object, and how it is dropped.

A few things live for the whole process: what this process last committed
of each session, the task tables it has read, the lock driver made for each
cache object, each Memcached server's item size limit, which ``tasks``
modules were imported, which warnings were given once, and so on. Each
piece has an *owner*, an object with a ``reset()`` or ``clear()`` that
drops it (the next use starts afresh, as in a new process), and each owner
registers itself here, with the settings its state was derived from.

- :func:`reset_process_state` drops every piece (tests use it to start from
  a clean process);
- when a setting changes (Django's ``setting_changed``, which
  ``override_settings`` and pytest-django's ``settings`` send), the owners
  that named that setting are reset, so a test that changes ``CACHES`` or a
  ``TRIGGERS_*`` setting never meets state derived from the old value.

This module imports nothing of the package's: owners import it, never the
other way round. What is *declared* rather than derived is no owner's and
is never dropped: registered tasks, lock drivers registered with
``register_lock_driver``, the classes in the entry-point registries (those
have ``refresh()``).
"""

from __future__ import annotations

import threading
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any, Protocol, TypeVar

from django.core.signals import setting_changed

__all__ = [
    "Owner",
    "Resettable",
    "owners",
    "register_state",
    "reset_for_setting",
    "reset_process_state",
]


class Resettable(Protocol):
    """An owner of process-wide state: ``reset()`` (or ``clear()``) drops it."""

    def reset(self) -> None: ...


@dataclass(frozen=True)
class Owner:
    """One registered piece of process-wide state."""

    #: a short name, unique among owners (``"committed heads"``)
    name: str
    #: the object that holds the state (has ``reset()`` or ``clear()``)
    obj: Any
    #: settings the state is derived from: a change to one of them resets it
    settings: frozenset[str]
    #: what is dropped, in a few words (for the docs and for error messages)
    about: str

    def reset(self) -> None:
        reset = getattr(self.obj, "reset", None) or self.obj.clear
        reset()


T = TypeVar("T")

_owners: dict[str, Owner] = {}
_lock = threading.Lock()


def register_state(name: str, obj: T, *, settings: Iterable[str] = (), about: str = "") -> T:
    """Register ``obj`` as the owner of a piece of process-wide state; returns it.

    ``obj`` has a ``reset()`` or a ``clear()`` method. ``settings`` names the
    Django settings its state is derived from. Registering a name again
    replaces the owner (a module imported twice).
    """
    if not callable(getattr(obj, "reset", None)) and not callable(getattr(obj, "clear", None)):
        raise TypeError(f"the owner of {name!r} must have a reset() or clear() method, not {obj!r}")
    owner = Owner(name, obj, frozenset(settings), about)
    with _lock:
        _owners[name] = owner
    return obj


def owners() -> dict[str, Owner]:
    """Every registered owner, by name (a copy)."""
    with _lock:
        return dict(_owners)


def _reset(selected: Iterable[Owner]) -> list[str]:
    done = []
    for owner in selected:
        owner.reset()
        done.append(owner.name)
    return done


def reset_process_state(names: Iterable[str] | None = None) -> list[str]:
    """Drop the process-wide state of every owner (or of the owners ``names``).

    The next use of each rebuilds it, as a newly started process would.
    Returns the names of the owners reset. An unknown name is a KeyError.
    Call it between operations, not while another thread is inside one: a
    piece dropped mid-operation is safe (it costs a read or a refused
    commit) but the operation may then not start where it expected.
    """
    current = owners()
    if names is None:
        return _reset(current.values())
    return _reset([current[name] for name in names])


def reset_for_setting(setting: str) -> list[str]:
    """Reset the owners whose state is derived from ``setting``; their names."""
    return _reset(owner for owner in owners().values() if setting in owner.settings)


def _on_setting_changed(*, setting: str, **kwargs: Any) -> None:
    reset_for_setting(setting)


# Connected here, not in the app's ready(): the state exists as soon as an
# owner's module is imported, which imports this one, app or no app.
setting_changed.connect(_on_setting_changed, weak=False, dispatch_uid=__name__)
