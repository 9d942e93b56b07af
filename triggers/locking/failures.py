"""Telling a failing cache from a bug, and saying so with one error.

Each cache client raises its own errors when its server is down, slow or
gone (redis-py's ``ConnectionError``, django-redis's
``ConnectionInterrupted``, pymemcache's ``MemcacheError``, the database's
``OperationalError``...). The storage and the lock turn those into one
:class:`~triggers.errors.BackendUnavailable` (the client's error chained), so
a caller needs one ``except`` whatever the cache. Which errors count is the
driver's knowledge (:attr:`LockDriver.failure_errors`).
"""

from __future__ import annotations

import binascii
import contextlib
import pickle
import zlib
from collections.abc import Iterator

from ..errors import BackendUnavailable, TriggersError
from .drivers.base import LockDriver, UndecodableValue
from .naming import cache_words, connection_refused

__all__ = ["DECODE_ERRORS", "reaching", "unavailable"]

#: what a client raises for a stored value it cannot decode (truncated,
#: not base64, random bytes): the value is damaged, the cache is fine
DECODE_ERRORS: tuple[type[BaseException], ...] = (
    pickle.UnpicklingError,
    EOFError,
    binascii.Error,
    UnicodeDecodeError,
    zlib.error,
    UndecodableValue,
)


def unavailable(
    driver: LockDriver, doing: str, exc: BaseException, *, outcome_unknown: bool = False
) -> BackendUnavailable:
    """The error saying the cache of ``driver`` failed while ``doing`` something.

    A write whose connection was refused sent nothing: its outcome is known."""
    outcome_unknown = outcome_unknown and not connection_refused(exc)
    after = (
        "; the writes may or may not have landed: read the session again to see which"
        if outcome_unknown
        else ""
    )
    error = BackendUnavailable(
        f"cache {cache_words(driver.cache)} failed while {doing}:"
        f" {type(exc).__name__}: {exc}{after}",
        outcome_unknown=outcome_unknown,
    )
    error.__cause__ = exc
    return error


@contextlib.contextmanager
def reaching(driver: LockDriver, doing: str, *, writing: bool = False) -> Iterator[None]:
    """Run a cache call, turning a failure of the cache into BackendUnavailable.

    ``writing``: the call writes, so a failure leaves its outcome unknown.
    Errors of this package and errors that are not the cache's go on as they are.
    """
    try:
        yield
    except TriggersError:
        raise
    except Exception as exc:
        if driver.is_failure(exc):
            raise unavailable(driver, doing, exc, outcome_unknown=writing) from exc
        raise
