"""Sealed values: a split head and each task table carry a digest of themselves
(instance records carry a checksum of their own form, see :mod:`.records`).

A value that still unpickles after damage (a flipped bit inside a string)
would otherwise be read as a different session and overwritten by the next
save. A sealed value is ``(SEAL_MARK, digest, body)``: ``body`` is the
value pickled, ``digest`` its BLAKE2b digest. The cache client pickles that
small tuple around the bytes, which costs a copy. Values stored before
sealing (plain dicts) pass through unchanged, so older sessions still read;
so do instance records sealed by earlier versions.
"""

from __future__ import annotations

import hashlib
import pickle
from typing import Any

from ...errors import StorageCorrupted
from ...locking.failures import DECODE_ERRORS

__all__ = ["SEAL_MARK", "is_sealed", "seal", "unseal"]

#: marks a sealed value (and its format)
SEAL_MARK = "triggers/sealed-1"
DIGEST_SIZE = 16


def _digest(body: bytes) -> bytes:
    return hashlib.blake2b(body, digest_size=DIGEST_SIZE).digest()


def seal(value: Any) -> tuple[str, bytes, bytes]:
    """``value`` in its sealed, stored form."""
    body = pickle.dumps(value, pickle.HIGHEST_PROTOCOL)
    return (SEAL_MARK, _digest(body), body)


def is_sealed(stored: Any) -> bool:
    """Whether ``stored`` looks like a sealed value (its digest not checked yet)."""
    return type(stored) is tuple and len(stored) == 3 and stored[0] == SEAL_MARK


def unseal(stored: Any, uid: str, key: str) -> Any:
    """The value sealed in ``stored``; an unsealed value (saved before sealing) as it is.

    StorageCorrupted naming ``uid`` and ``key`` if the digest does not match
    the body or the body does not unpickle.
    """
    if type(stored) is not tuple or not stored or stored[0] != SEAL_MARK:
        return stored
    if len(stored) != 3 or type(stored[1]) is not bytes or type(stored[2]) is not bytes:
        raise StorageCorrupted(uid, f"{key!r} is damaged: its seal is malformed")
    _, digest, body = stored
    if _digest(body) != digest:
        raise StorageCorrupted(uid, f"{key!r} is damaged: its checksum does not match")
    try:
        return pickle.loads(body)
    except DECODE_ERRORS as exc:
        raise StorageCorrupted(
            uid, f"{key!r} is damaged: its body does not decode ({type(exc).__name__})"
        ) from exc
