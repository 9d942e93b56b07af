"""How a session's keys are named in the cache.

``triggers.storages.cache:<uid>`` is the key Triggers 2.x kept a whole
session in; here it holds the head (split layout) or the whole session
(single layout), so 2.x processes keep finding (or refusing) it.

Every other key of a session (its lock, the witness, the task tables, the
instance records or the pages holding them) lives under the session's *part prefix*::

    triggers.s:{<tag>}<length of uid>:<uid>

No uid can reach another session's keys: heads and parts start
differently, the part prefix spells out the uid's length, and what follows
the uid (``:lock``, ``:w``, ``:t:<version>``, ``:i:<name>``, ``:p:<page>``) is fixed.
``<tag>`` is a short string that Redis Cluster hashes to the same slot as
the session's head (as the cache names it), so every key of a session,
head included, lives on one node of a cluster and one server-side script
can touch them all. Elsewhere the tag is just a few more characters.
"""

from __future__ import annotations

import binascii
import functools
import hashlib
import itertools
import re
import string
import threading
from collections.abc import Iterable

from ...locking.pages import entry_key
from ..instances import NUMBER_DIGITS, name_number

__all__ = [
    "KEY_PREFIX",
    "PAGE_RECORDS",
    "PART_PREFIX",
    "SessionKeys",
    "cluster_slot",
    "page_of",
    "slot_tag",
]

#: what the key of a session is its uid prefixed with (as in 2.x)
KEY_PREFIX = "triggers.storages.cache:"
#: what every other key of a session starts with (never a head: see above)
PART_PREFIX = "triggers.s:"

#: how many instances of one task share a page (paged layout): ``t#0`` to
#: ``t#31`` the first, and so on
PAGE_RECORDS = 32
#: how many pages hold the instances whose names are not ``<task>#<number>``
IRREGULAR_PAGES = 16

#: Redis Cluster's number of hash slots
CLUSTER_SLOTS = 16384

_SAFE_NAME = re.compile(r"[A-Za-z0-9_.#:@+=-]{1,64}")


@functools.lru_cache(maxsize=65536)
def _record_suffix(instance_name: str) -> str:
    """A key-safe part for an instance name (hashed if it has unsafe characters)."""
    if _SAFE_NAME.fullmatch(instance_name):
        return instance_name
    return "~" + hashlib.sha1(instance_name.encode("utf-8")).hexdigest()


@functools.lru_cache(maxsize=65536)
def page_of(instance_name: str) -> str:
    """The page an instance's record is kept in (paged layout): the task's
    ``PAGE_RECORDS`` numbered instances together, other names spread by
    checksum. Only which records share a page depends on it: an entry is
    found by its full name."""
    numbered = name_number(instance_name)
    if numbered is not None and numbered[0]:
        return f"{_record_suffix(numbered[0])}#{numbered[1] // PAGE_RECORDS}"
    return f"~{binascii.crc32(instance_name.encode('utf-8', 'surrogatepass')) % IRREGULAR_PAGES}"


def cluster_slot(key: str) -> int:
    """The Redis Cluster slot of ``key``: CRC16 of its hash tag (the text
    between the first ``{`` and the next ``}``, if not empty), else of all of it."""
    data = key.encode("utf-8", "surrogatepass")
    start = data.find(b"{")
    if start >= 0:
        end = data.find(b"}", start + 1)
        if end > start + 1:
            data = data[start + 1 : end]
    return binascii.crc_hqx(data, 0) % CLUSTER_SLOTS


class _SlotTags:
    """The shortest-first tag of each slot, found by walking candidates in one
    fixed order (so every process finds the same tag), as far as needed."""

    ALPHABET = string.ascii_lowercase + string.digits

    def __init__(self) -> None:
        self._tags: dict[int, str] = {}
        self._candidates = (
            "".join(chars)
            for size in itertools.count(1)
            for chars in itertools.product(self.ALPHABET, repeat=size)
        )
        self._lock = threading.Lock()

    def tag(self, slot: int) -> str:
        with self._lock:
            tags = self._tags
            while slot not in tags:
                candidate = next(self._candidates)
                tags.setdefault(binascii.crc_hqx(candidate.encode(), 0) % CLUSTER_SLOTS, candidate)
            return tags[slot]


_slot_tags = _SlotTags()


def slot_tag(slot: int) -> str:
    """A short tag that Redis Cluster hashes to ``slot``."""
    return _slot_tags.tag(slot)


class SessionKeys:
    """The cache keys of one session.

    ``made_head`` is the head's key as the cache names it on the server
    (with the cache's own prefix and version): the parts share its slot.
    """

    def __init__(self, uid: str, head: str, made_head: str) -> None:
        #: the head (split) or the whole session (single), under the 2.x key
        self.head = head
        #: what every other key of the session starts with
        self.parts = f"{PART_PREFIX}{{{slot_tag(cluster_slot(made_head))}}}{len(uid)}:{uid}"
        #: the witness: the generation of the last save, and that save's own token
        self.witness = self.parts + ":w"
        #: the session's lock, while it is held
        self.lock = self.parts + ":lock"

    def record(self, instance_name: str) -> str:
        """Key of one instance record (split layout)."""
        return f"{self.parts}:i:{_record_suffix(instance_name)}"

    def page(self, instance_name: str) -> str:
        """Key of the page holding one instance record (paged layout)."""
        return f"{self.parts}:p:{page_of(instance_name)}"

    def pages_of(self, instance_names: Iterable[str]) -> dict[str, list[str]]:
        """``instance_names`` grouped by the key of the page holding each one's
        record (paged layout): the keys :meth:`page` gives, each task's part of
        them made once (a whole read groups every name of a session)."""
        groups: dict[str, list[str]] = {}
        prefixes: dict[str, str] = {}
        for name in instance_names:
            task, _, number = name.rpartition("#")
            prefix = prefixes.get(task)
            # A number as name_number() reads one, of a task known to number its names.
            if (
                prefix is not None
                and number.isascii()
                and number.isdigit()
                and len(number) <= NUMBER_DIGITS
            ):
                key = f"{prefix}{int(number) // PAGE_RECORDS}"
            else:
                key = self.page(name)
                if task and name_number(name) is not None:
                    prefixes[task] = f"{self.parts}:p:{_record_suffix(task)}#"
            groups.setdefault(key, []).append(name)
        return groups

    def page_entry(self, instance_name: str) -> str:
        """Key naming one instance record as an entry of its page (paged layout)."""
        return entry_key(self.page(instance_name), instance_name)

    def tasks(self, version: str) -> str:
        """Key of the task table of that version (configs and their triggers)."""
        return f"{self.parts}:t:{version}"
