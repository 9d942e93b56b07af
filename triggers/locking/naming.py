"""Naming a cache for an operator: its alias and address, not only its class.

An error that says ``django_redis.cache.RedisCache failed`` leaves the
operator to guess which of the project's caches, on which server, it was.
Where the settings name the cache object (``CACHES``), the message says
``'default' (redis://127.0.0.1:6379/4, django_redis.cache.RedisCache)``;
a URL's user and password are never shown. A cache object made outside
the settings is named by its class.
"""

from __future__ import annotations

import errno
from collections.abc import Iterator
from urllib.parse import urlsplit, urlunsplit

from django.core.cache import BaseCache

from .drivers.base import cache_name

__all__ = ["cache_alias_of", "cache_words", "connection_refused"]


def cache_alias_of(cache: BaseCache) -> str | None:
    """The alias of ``CACHES`` whose cache object (in this thread) is ``cache``."""
    from django.conf import settings
    from django.core.cache import caches

    if not settings.configured:
        return None
    for alias in getattr(settings, "CACHES", {}) or {}:
        try:
            if caches[alias] is cache:
                return str(alias)
        except Exception:  # an alias whose backend cannot be built: not this one
            continue
    return None


def _without_credentials(location: str) -> str:
    if "://" not in location:
        return location
    parts = urlsplit(location)
    host = parts.netloc.rpartition("@")[2]
    return urlunsplit(parts._replace(netloc=host))


def cache_words(cache: BaseCache) -> str:
    """``'alias' (location, class)`` for a cache the settings name, else its class."""
    from django.conf import settings

    alias = cache_alias_of(cache)
    if alias is None:
        return cache_name(cache)
    location = settings.CACHES[alias].get("LOCATION") or ""
    places = [location] if isinstance(location, str) else list(location)
    where = ", ".join(_without_credentials(str(place)) for place in places if place)
    return f"{alias!r} ({where + ', ' if where else ''}{cache_name(cache)})"


def _chain(exc: BaseException) -> Iterator[BaseException]:
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        yield current
        current = current.__cause__ or current.__context__


def _refusal(error: BaseException) -> bool:
    if isinstance(error, ConnectionRefusedError):
        return True
    if isinstance(error, OSError) and error.errno == errno.ECONNREFUSED:
        return True
    # redis-py words the refusal in its own ConnectionError ("Error 111 connecting...").
    return f"Error {errno.ECONNREFUSED} connecting" in str(error)


def connection_refused(exc: BaseException) -> bool:
    """Whether the only failure behind ``exc`` is a refused connection, so
    nothing was sent. A client that lost a connection mid-request and was
    then refused when it connected again (its retry) may have sent the
    request before: that is no refusal."""
    found = False
    for error in _chain(exc):
        if _refusal(error):
            found = True
        elif isinstance(error, (OSError, ConnectionError)) or "Connection" in type(error).__name__:
            return False  # the connection failed another way first
    return found
