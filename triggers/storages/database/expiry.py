"""Deleting expired sessions in batches (``manage.py triggers clearsessions``).

An expired session already reads as absent; this only gives its rows
back. Each batch is one transaction over rows locked for it, skipping any
whose lock a holder has (it may be starting the session over), and a
configuration set that no session uses any more goes too, once it is old
enough that no save can be about to point at it.
"""

from __future__ import annotations

import datetime as dt

from django.db import connections, transaction
from django.db.models import F
from django.utils import timezone

from ...errors import InvalidArgument
from ...models import Configuration, Instance, Session
from .backend import database_alias
from .locks import free_lock

__all__ = ["DEFAULT_BATCH_SIZE", "clear_expired_sessions"]

DEFAULT_BATCH_SIZE = 500
#: a configuration set no session uses is kept this long after it was made
UNUSED_CONFIGURATION_AGE = dt.timedelta(hours=1)


def _batch(using: str, size: int) -> int:
    """Delete up to ``size`` expired sessions in one transaction; how many."""
    connection = connections[using]
    with transaction.atomic(using=using):
        if connection.vendor == "sqlite":  # take the write lock first
            Session.objects.using(using).filter(pk=-1).update(revision=F("revision"))
        now = timezone.now()
        expired = Session.objects.using(using).filter(free_lock(now), expires__lte=now)
        skip = connection.features.has_select_for_update_skip_locked
        pks = list(expired.select_for_update(skip_locked=skip).values_list("pk", flat=True)[:size])
        if not pks:
            return 0
        Instance.objects.using(using).filter(session_id__in=pks).delete()
        Session.objects.using(using).filter(pk__in=pks).delete()
    return len(pks)


def clear_expired_sessions(using: str | None = None, batch_size: int = DEFAULT_BATCH_SIZE) -> int:
    """Delete every expired session's rows, ``batch_size`` sessions a
    transaction; returns how many sessions were deleted."""
    if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
        raise InvalidArgument("batch_size", batch_size, "must be a whole number, 1 or more")
    alias = database_alias(using)
    deleted = 0
    while True:
        count = _batch(alias, batch_size)
        deleted += count
        if count < batch_size:
            break
    old = timezone.now() - UNUSED_CONFIGURATION_AGE
    unused = Configuration.objects.using(alias).filter(sessions__isnull=True, created__lt=old)
    unused.delete()
    return deleted
