"""How a session's keys are named in the cache.

``triggers.storages.cache:<uid>`` is the key Triggers 2.x kept a whole
session in; here it holds the head (split layout) or the whole session
(single layout). The other keys hang off it: the witness (``:w``), the task
tables by version (``:t:<version>``) and the instance records
(``:i:<name>``, a digest for names a cache might not accept).
"""

from __future__ import annotations

import functools
import hashlib
import re

__all__ = ["KEY_PREFIX", "SessionKeys"]

#: what the key of a session is its uid prefixed with (as in 2.x)
KEY_PREFIX = "triggers.storages.cache:"

_SAFE_NAME = re.compile(r"[A-Za-z0-9_.#:@+=-]{1,64}")


@functools.lru_cache(maxsize=65536)
def _record_suffix(instance_name: str) -> str:
    """A key-safe part for an instance name (hashed if it has unsafe characters)."""
    if _SAFE_NAME.fullmatch(instance_name):
        return instance_name
    return "~" + hashlib.sha1(instance_name.encode("utf-8")).hexdigest()


class SessionKeys:
    """The cache keys of one session."""

    def __init__(self, cache_key: str) -> None:
        #: the head (split) or the whole session (single), under the 2.x key
        self.head = cache_key
        #: the witness: a generation number refreshed by every save
        self.witness = cache_key + ":w"

    def record(self, instance_name: str) -> str:
        """Key of one instance record (split layout)."""
        return f"{self.head}:i:{_record_suffix(instance_name)}"

    def tasks(self, version: str) -> str:
        """Key of the task table of that version (configs and their triggers)."""
        return f"{self.head}:t:{version}"
