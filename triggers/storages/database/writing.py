"""Writing what a save changed: the session row, and only the instance rows that changed.

Called inside the caller's transaction (a try's, or the one a lock holder's
save opens). With a ``fence`` (a lock holder's), the session row is updated
first and only where the fence matches, so a lapsed holder writes nothing.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping
from dataclasses import dataclass, replace
from typing import Any

from django.core.cache.backends.base import DEFAULT_TIMEOUT
from django.db import connections
from django.db.models import F, Q
from django.utils import timezone

from ...conf import session_timeout_setting
from ...errors import LockLost, StorageCorrupted
from ...types import TaskConfig
from ..instances import TaskInstanceCollection
from . import tables
from .configurations import configuration_sets, digest_of
from .reading import SessionRow
from .rows import INSTANCE_FIELDS, check_instance_row_name, dumps, instance_row

__all__ = ["SessionWrite", "session_lifetime"]

#: a save refreshes the session's expiry once it has aged by this share of
#: its lifetime (so a session lives at least 99% of it after its last save)
EXPIRY_SLACK = 0.01
#: a save that changes only instances leaves the session's last-modified time
#: alone while it is younger than this (seconds): it is exact to a minute
MODIFIED_SLACK = 60.0
_UPDATED_INSTANCE_FIELDS = [f for f in INSTANCE_FIELDS if f != "name"]


def session_lifetime() -> float | None:
    """Seconds a session lives after a save (None: for ever, also when the setting is unset)."""
    value = session_timeout_setting()
    return None if value is DEFAULT_TIMEOUT or value is None else float(value)


def _expiry(row: SessionRow, lifetime: float | None, now: dt.datetime) -> dt.datetime | None | bool:
    """The new expiry, or False when the stored one is fresh enough to keep."""
    if lifetime is None:
        return False if row.exists and row.expires is None and row.lifetime is None else None
    new = now + dt.timedelta(seconds=lifetime)
    if row.exists and row.lifetime == lifetime and row.expires is not None:
        if (new - row.expires).total_seconds() <= lifetime * EXPIRY_SLACK:
            return False
    return new


@dataclass
class SessionWrite:
    """One save of one session, to be made by :meth:`run`."""

    using: str
    uid: str
    row: SessionRow
    configs: Mapping[str, TaskConfig]
    metas: Mapping[str, Any]
    instances: TaskInstanceCollection
    prints: dict[str, tuple[Any, ...]]
    #: whether the configuration was changed since the row was read
    configs_changed: bool = True
    fence: Q | None = None
    #: raised when the fence does not match
    lost: LockLost | None = None

    def _changed_instances(self) -> list[tuple[str, Any]]:
        changed = []
        for name, instance in self.instances.loaded.items():
            check_instance_row_name(name)
            row = instance_row(instance)
            if row.fingerprint != self.prints.get(name):
                changed.append((name, row))
        return changed

    def _session_fields(self, now: dt.datetime) -> dict[str, Any]:
        """The session columns that changed since the row was read."""
        row = self.row
        fields: dict[str, Any] = {}
        if self.configs_changed or not row.exists or (row.digest is None and self.configs):
            # Serialized and digested only then: a fire leaves the configuration alone.
            serialized = {name: config.serialize() for name, config in self.configs.items()}
            digest = digest_of(serialized) if serialized else None
            if digest != row.digest or not row.exists:
                if digest is not None:
                    configuration_sets.store(self.using, digest, serialized)
                fields["configuration_id"] = digest
        metadata = dumps(dict(self.metas))
        if metadata != row.metadata or not row.exists:
            fields["metadata"] = metadata
        counts, irregular = self.instances.index()
        index = {"counts": counts, "irregular": irregular}
        if index != row.index or not row.exists:
            fields["instance_index"] = index
        lifetime = session_lifetime()
        expires = _expiry(row, lifetime, now)
        if expires is not False:
            fields.update(lifetime=lifetime, expires=expires)
        if row.lock_token and self.fence is None:
            # A lapsed holder's lock: it wrote nothing since.
            fields.update(lock_token="", lock_expires=None)
        return fields

    def run(self) -> SessionRow:
        """Write the changes; the row as it now stands (the caller's transaction commits it)."""
        now = timezone.now()
        changed = self._changed_instances()
        row = self.row
        if row.stale:  # expired: what it held goes, its row is written afresh
            tables.Instance.objects.using(self.using).filter(session_id=row.pk).delete()
            self.row = SessionRow(
                pk=row.pk, lock_token=row.lock_token, lock_expires=row.lock_expires
            )
        fields = self._session_fields(now)
        row = self.row
        updated = True
        if not row.exists:
            created = tables.Session.objects.using(self.using).create(
                uid=self.uid, created=now, modified=now, **fields
            )
            pk = created.pk
        else:
            assert row.pk is not None
            pk = row.pk
            updated = bool(fields or self.fence is not None or changed and self._touch_row(now))
            if updated:
                self._update_session(pk, fields, now)
        self._upsert(pk, changed)
        for name, instance_row_ in changed:
            self.prints[name] = instance_row_.fingerprint
        return self._after(row, pk, fields, now, updated)

    def _touch_row(self, now: dt.datetime) -> bool:
        """Whether a save that changes only instances writes the session's row too.

        On PostgreSQL always: its revision tells a transaction that waited for
        this one that its read of the instances is older than this commit (see
        :func:`.reading.read_session_with`). Elsewhere only to keep the
        last-modified time to the minute.
        """
        if connections[self.using].vendor == "postgresql":
            return True
        modified = self.row.modified
        return modified is None or (now - modified).total_seconds() > MODIFIED_SLACK

    def _update_session(self, pk: int, fields: dict[str, Any], now: dt.datetime) -> None:
        rows = tables.Session.objects.using(self.using).filter(pk=pk)
        if self.fence is not None:
            rows = rows.filter(self.fence)
        if not rows.update(modified=now, revision=F("revision") + 1, **fields):
            if self.lost is not None:
                raise self.lost
            raise StorageCorrupted(self.uid, "its row vanished while it was written")

    def _upsert(self, pk: int, changed: list[tuple[str, Any]]) -> None:
        if not changed:
            return
        # MySQL and MariaDB upsert on any unique key, and take no target.
        targeted = connections[self.using].features.supports_update_conflicts_with_target
        tables.Instance.objects.using(self.using).bulk_create(
            [tables.Instance(session_id=pk, **r.columns) for _, r in changed],
            update_conflicts=True,
            unique_fields=["session", "name"] if targeted else None,
            update_fields=_UPDATED_INSTANCE_FIELDS,
        )

    @staticmethod
    def _after(
        row: SessionRow, pk: int, fields: dict[str, Any], now: dt.datetime, updated: bool
    ) -> SessionRow:
        return replace(
            row,
            pk=pk,
            digest=fields.get("configuration_id", row.digest),
            metadata=fields.get("metadata", row.metadata),
            index=fields.get("instance_index", row.index),
            lifetime=fields.get("lifetime", row.lifetime),
            expires=fields.get("expires", row.expires),
            lock_token=fields.get("lock_token", row.lock_token),
            lock_expires=fields.get("lock_expires", row.lock_expires),
            modified=now if updated else row.modified,
        )
