"""The database backend's lock: a token and a lapse time in the session's own row.

Taking the lock is one conditional UPDATE (or the INSERT of a new session's
row), in its own short transaction: no transaction stays open while the
holder works. Its writes are fenced instead: each save checks, in the same
transaction as its writes, that the row still holds this holder's token
and that it has not lapsed, so a holder paused past its ttl writes nothing
(:class:`~triggers.errors.LockLost`).
"""

from __future__ import annotations

import datetime as dt
import os
import random
import re
import threading
import time
import uuid
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import Any

from django.db import DatabaseError, IntegrityError, transaction
from django.db.models import Q
from django.utils import timezone

from ...errors import LockAcquisitionFailed, LockBackendError, LockLost
from ...locking.lock import Block, Ttl
from ...locking.writes import NO_WRITES, Writes
from . import tables
from .rows import dumps

__all__ = ["DEFAULT_LOCK_TTL", "NoRowLock", "RowLock", "free_lock", "lock_ttl", "reaching"]

#: seconds a lock taken with ``ttl=True`` lives (Django's default cache timeout)
DEFAULT_LOCK_TTL = 300.0
#: how SQLite, PostgreSQL and MySQL say a table is missing
_MISSING_TABLE = re.compile(r"no such table|relation .* does not exist|Table .* doesn't exist")
#: first and longest pause of a waiter (seconds)
BACKOFF_START = 0.001
BACKOFF_CAP = 0.05


def lock_ttl(ttl: Ttl) -> float | None:
    """Seconds the lock lives (None: until released), from ``acquire_lock``'s ``ttl``."""
    if ttl is True:
        return DEFAULT_LOCK_TTL
    if ttl is None:
        return None
    if isinstance(ttl, bool) or not isinstance(ttl, (int, float)) or not 0 < ttl < float("inf"):
        raise ValueError(f"lock ttl must be a positive number of seconds, True or None, not {ttl!r}")
    return float(ttl)


def free_lock(now: dt.datetime) -> Q:
    """Rows whose lock is free: no token, or one that has lapsed."""
    return Q(lock_token="") | Q(lock_expires__lt=now)


@contextmanager
def reaching(using: str, doing: str) -> Iterator[None]:
    """Turn a failing database into LockBackendError (IntegrityError passes: it is a conflict)."""
    try:
        yield
    except IntegrityError:
        raise
    except DatabaseError as exc:
        hint = ""
        if _MISSING_TABLE.search(str(exc)):
            hint = " (are the tables there? run: manage.py migrate triggers)"
        raise LockBackendError(f"database {using!r} failed while {doing}: {exc}{hint}") from exc


class RowLock:
    """One acquisition of a session's lock (see the module's docstring)."""

    held = False
    writes_land_together = True

    def __init__(self, key: str, uid: str, using: str, ttl: Ttl) -> None:
        self.key = key
        self.uid = uid
        self.using = using
        self.ttl = lock_ttl(ttl)
        self.token = f"{os.getpid()}:{threading.get_ident()}:{uuid.uuid4().hex}"

    def _lapse(self, now: dt.datetime) -> dt.datetime | None:
        return None if self.ttl is None else now + dt.timedelta(seconds=self.ttl)

    def _try_take(self) -> bool:
        now = timezone.now()
        rows = tables.Session.objects.using(self.using).filter(uid=self.uid)
        if rows.filter(free_lock(now)).update(lock_token=self.token, lock_expires=self._lapse(now)):
            return True
        try:
            with transaction.atomic(using=self.using):
                tables.Session.objects.using(self.using).create(
                    uid=self.uid,
                    metadata=dumps({}),
                    created=now,
                    modified=now,
                    lock_token=self.token,
                    lock_expires=self._lapse(now),
                )
        except IntegrityError:
            return False  # the row exists, and its lock is held
        return True

    def acquire(self, block: Block = True, read: Sequence[str] = ()) -> dict[str, Any]:
        """Take the lock, waiting as ``block`` says (LockAcquisitionFailed if it cannot)."""
        started = time.monotonic()
        deadline = None if block is True else started + (0.0 if block is False else float(block))
        pause = BACKOFF_START
        while True:
            with reaching(self.using, f"taking lock {self.key!r}"):
                taken = self._try_take()
            if taken:
                self.held = True
                return {}
            now = time.monotonic()
            if deadline is not None and now >= deadline:
                raise LockAcquisitionFailed(self.key, None if block is False else float(block))
            wait = pause * random.uniform(0.5, 1.0)
            time.sleep(wait if deadline is None else min(wait, deadline - now))
            pause = min(pause * 2, BACKOFF_CAP)

    def fence(self, now: dt.datetime) -> Q:
        """Rows this holder may still write: its token, not lapsed at ``now``."""
        return Q(lock_token=self.token) & (Q(lock_expires__isnull=True) | Q(lock_expires__gte=now))

    def lost(self) -> LockLost:
        return LockLost(self.key, self.ttl)

    def write(self, writes: Writes) -> None:
        """Nothing is deferred: the backend writes at each save."""

    def release(self, writes: Writes = NO_WRITES) -> bool:
        """Let go of the lock; False if it was no longer ours."""
        if not self.held:
            return False
        self.held = False
        with reaching(self.using, f"releasing lock {self.key!r}"):
            mine = tables.Session.objects.using(self.using).filter(uid=self.uid, lock_token=self.token)
            return bool(mine.update(lock_token="", lock_expires=None))


class NoRowLock:
    """``acquire_lock(ttl=False)``: no lock taken, saves written plainly."""

    held = True
    ttl: float | None = None
    writes_land_together = True

    def __init__(self, key: str) -> None:
        self.key = key

    def acquire(self, block: Block = True, read: Sequence[str] = ()) -> dict[str, Any]:
        return {}

    def write(self, writes: Writes) -> None:
        """Nothing is deferred: the backend writes at each save."""

    def release(self, writes: Writes = NO_WRITES) -> bool:
        return True
