"""What a session accepts before anything reaches a cache: its uid, and storable values."""

from __future__ import annotations

import pickle
import re
from typing import Any

from ..errors import InvalidSessionUid, UnserializableValue

__all__ = ["MAX_UID_BYTES", "check_storable", "validate_uid"]

#: Longest uid accepted, in UTF-8 bytes: keeps every derived cache key
#: within Memcached's 250-byte limit, with room for Django's key prefix.
MAX_UID_BYTES = 150

_WHITESPACE = re.compile(r"\s")


def validate_uid(uid: object) -> str:
    """Return ``uid`` if every supported cache can key it, else raise InvalidSessionUid."""
    if not isinstance(uid, str):
        raise InvalidSessionUid(uid, f"must be a string, not {type(uid).__name__}")
    if not uid:
        raise InvalidSessionUid(uid, "must not be empty")
    if len(uid.encode("utf-8")) > MAX_UID_BYTES:
        raise InvalidSessionUid(uid, f"longer than {MAX_UID_BYTES} bytes")
    if uid.isprintable() and _WHITESPACE.search(uid) is None:
        return uid
    for char in uid:
        if char.isspace() or not char.isprintable():
            raise InvalidSessionUid(uid, f"contains whitespace or a control character ({char!r})")
    return uid


def check_storable(what: str, value: Any) -> None:
    """Raise UnserializableValue now if ``value`` cannot be pickled by a cache."""
    try:
        pickle.dumps(value, pickle.HIGHEST_PROTOCOL)
    except Exception as exc:  # pickle raises several types for the same problem
        raise UnserializableValue(what, value, exc) from exc
