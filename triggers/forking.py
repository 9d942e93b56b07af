"""A process forked after its parent used a cache gets connections of its own.

A fork copies every open socket. A child that goes on using its parent's
Memcached client, or its parent's database connection, talks on the same
socket as the parent: each reads replies meant for the other (a child waits
for ever, or takes the parent's ``END`` as the answer to its ``add``).
redis-py notices a fork by itself (its pools compare the process id) and
opens new connections in the child; pymemcache and Django's database
connections do not, so this module drops them in the child, once per fork,
and the next use opens new ones.

The parent's sockets are never closed or written from the child: the
child's copy of a database socket is pointed at ``/dev/null`` first, so
that a driver finishing the connection (a "terminate" message) cannot end
the parent's session.
"""

from __future__ import annotations

import contextlib
import os
import threading
import weakref
from typing import Any

from django.core.cache import BaseCache

from .cache_internals import forget_memcached_client
from .process_state import register_state

__all__ = ["in_child_after_fork", "watch_forks"]

#: Memcached cache objects whose client a forked child must not reuse
#: (``clear()``: forget them; Django's own caches are found anyway)
_memcached: weakref.WeakSet[BaseCache] = register_state(
    "fork-watched caches",
    weakref.WeakSet(),
    settings=("CACHES",),
    about="the Memcached cache objects a forked child drops the client of",
)
# Not reset, on purpose: the connections below must outlive the process,
# and a hook registered with os.register_at_fork cannot be taken back (it
# only drops clients, so running it in a child is always safe).
#: database connections a child took over from its parent, kept so that they
#: are never finalised (and never close anything) in the child
_orphans: list[Any] = []
_registered = False
_registering = threading.Lock()


def watch_forks(memcached: BaseCache | None = None) -> None:
    """Have a forked child open connections of its own: to the database, and
    to ``memcached`` (a Memcached cache object) if given."""
    global _registered
    if memcached is not None:
        _memcached.add(memcached)
    if not _registered:
        with _registering:
            if not _registered and hasattr(os, "register_at_fork"):
                os.register_at_fork(after_in_child=in_child_after_fork)
                _registered = True


def _memcached_caches() -> list[BaseCache]:
    """The Memcached caches this process may have used: those handed to
    :func:`watch_forks`, and the ones Django's ``caches`` made in this thread."""
    from django.core.cache import caches
    from django.core.cache.backends.memcached import BaseMemcachedCache

    found = list(_memcached)
    with contextlib.suppress(Exception):
        found += [c for c in caches.all(initialized_only=True) if isinstance(c, BaseMemcachedCache)]
    return found


def _detach_databases() -> None:
    """Leave the parent's database connections to the parent."""
    from django.db import connections

    try:
        wrappers = connections.all(initialized_only=True)
    except Exception:  # settings not configured: there is nothing to leave
        return
    for wrapper in wrappers:
        raw = getattr(wrapper, "connection", None)
        if raw is None:
            continue
        _orphans.append(raw)
        fileno = getattr(raw, "fileno", None)
        if callable(fileno):
            with contextlib.suppress(Exception):
                devnull = os.open(os.devnull, os.O_RDWR)
                try:
                    os.dup2(devnull, fileno())
                finally:
                    os.close(devnull)
        wrapper.connection = None


def in_child_after_fork() -> None:
    """Drop what the parent's connections left in this (forked) process."""
    for cache in _memcached_caches():
        with contextlib.suppress(Exception):
            forget_memcached_client(cache)
    with contextlib.suppress(Exception):
        _detach_databases()
