"""Task configuration sets: stored once each, named by their digest.

Sessions configured alike (most are) share one set. A set's rows never
change once written, so a process keeps each set it has read, by digest,
for as long as it runs: reading a session does not read its configuration
again.
"""

from __future__ import annotations

import hashlib
import threading
from collections import OrderedDict
from collections.abc import Mapping
from typing import Any

from django.db import IntegrityError, transaction
from django.utils import timezone

from ...errors import StorageCorrupted
from ...process_state import register_state
from . import tables
from .rows import column_text, dumps, loads

__all__ = ["configuration_sets", "digest_of"]

#: sessions whose configuration set a process remembers (a guess that saves a read)
SESSIONS_REMEMBERED = 4096


def digest_of(serialized: Mapping[str, Mapping[str, Any]]) -> str:
    """The digest naming a set of serialized task definitions.

    Each definition is pickled on its own, as its row stores it: a set read
    back (its definitions share no object) has the digest it was stored under.
    """
    digest = hashlib.sha256()
    for name in sorted(serialized):
        encoded = name.encode("utf-8", "surrogatepass")
        definition = dumps(serialized[name])
        digest.update(b"%d:%s%d:%s" % (len(encoded), encoded, len(definition), definition))
    return digest.hexdigest()


class ConfigurationSets:
    """The sets this process has read or written, by database alias and digest."""

    def __init__(self) -> None:
        self._sets: dict[tuple[str, str], dict[str, dict[str, Any]]] = {}
        #: the set each session last read here used, newest last (a guess, bounded)
        self._of_session: OrderedDict[tuple[str, str], str] = OrderedDict()
        self._lock = threading.Lock()

    def reset(self) -> None:
        with self._lock:
            self._sets.clear()
            self._of_session.clear()

    def session_digest(self, using: str, uid: str, digest: str) -> None:
        """Remember that session ``uid`` used set ``digest`` when it was last read here."""
        with self._lock:
            self._of_session[(using, uid)] = digest
            self._of_session.move_to_end((using, uid))
            while len(self._of_session) > SESSIONS_REMEMBERED:
                self._of_session.popitem(last=False)

    def digest_of_session(self, using: str, uid: str) -> str | None:
        """The set session ``uid`` used when it was last read here, if remembered."""
        with self._lock:
            return self._of_session.get((using, uid))

    def known(self, using: str, digest: str) -> dict[str, dict[str, Any]]:
        """The definitions of set ``digest`` if this process has them (else empty)."""
        with self._lock:
            return self._sets.get((using, digest)) or {}

    def load(self, uid: str, using: str, digest: str) -> dict[str, dict[str, Any]]:
        """The definitions of set ``digest`` (one query the first time)."""
        with self._lock:
            known = self._sets.get((using, digest))
        if known is not None:
            return known
        rows = tables.TaskDefinition.objects.using(using).filter(configuration__digest=digest)
        definitions = {
            name: loads(uid, data, f"the definition of task {name!r}")
            for name, data in rows.values_list("name", "definition")
        }
        if not definitions:
            raise StorageCorrupted(uid, f"its task configuration set {digest[:12]} is missing")
        for name, data in definitions.items():
            if not isinstance(data, dict):
                raise StorageCorrupted(uid, f"task {name!r} is stored as {data!r}")
        with self._lock:
            self._sets[(using, digest)] = definitions
        return definitions

    def store(self, using: str, digest: str, serialized: Mapping[str, dict[str, Any]]) -> None:
        """Make sure set ``digest`` is stored, inside the caller's transaction
        (checked each time: a set no session uses any more may be deleted)."""
        if not tables.Configuration.objects.using(using).filter(digest=digest).exists():
            try:
                with transaction.atomic(using=using):
                    self._insert(using, digest, serialized)
            except IntegrityError:
                pass  # another process stored the same set first
        with self._lock:
            self._sets[(using, digest)] = {name: dict(d) for name, d in serialized.items()}

    @staticmethod
    def _insert(using: str, digest: str, serialized: Mapping[str, dict[str, Any]]) -> None:
        configuration = tables.Configuration.objects.using(using).create(
            digest=digest, created=timezone.now()
        )
        tables.TaskDefinition.objects.using(using).bulk_create(
            tables.TaskDefinition(
                configuration=configuration,
                name=name,
                runner=column_text(definition.get("using")),
                definition=dumps(definition),
            )
            for name, definition in serialized.items()
        )


configuration_sets = register_state(
    "database configuration sets",
    ConfigurationSets(),
    settings=("DATABASES",),
    about="task configuration sets read from the database, by digest",
)
