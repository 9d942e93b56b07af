"""Sealed values: a split head and each task table carry a digest of themselves
(instance records carry a checksum of their own form, see :mod:`.records`).

A value that still unpickles after damage (a flipped bit inside a string)
would otherwise be read as a different session and overwritten by the next
save. A sealed value is ``(mark, digest, body)``: ``body`` is the value
pickled, ``digest`` its BLAKE2b digest. Under :data:`COMPRESSED_SEAL_MARK`
the body is the pickle compressed with zlib (heads and task tables, where
that is smaller), and the digest is of the compressed bytes, so damage is
found before anything is inflated. The cache client pickles that
small tuple around the bytes, which costs a copy. Values stored before
sealing (plain dicts) pass through unchanged, so older sessions still read;
so do instance records sealed by earlier versions.
"""

from __future__ import annotations

import hashlib
import pickle
import zlib
from typing import Any

from ...errors import StorageCorrupted
from ...locking.failures import DECODE_ERRORS

__all__ = ["COMPRESSED_SEAL_MARK", "MAX_INFLATED", "SEAL_MARK", "is_sealed", "seal", "unseal"]

#: marks a sealed value (and its format)
SEAL_MARK = "triggers/sealed-1"
#: marks a sealed value whose body is compressed
COMPRESSED_SEAL_MARK = "triggers/sealed-z1"
SEAL_MARKS = (SEAL_MARK, COMPRESSED_SEAL_MARK)
DIGEST_SIZE = 16
#: zlib's fastest level: a head of a few kB compresses to about a third in
#: some 10 us; the higher levels take longer for a few bytes less
COMPRESS_LEVEL = 1
#: the most a compressed body may inflate to: Redis's largest value (512 MiB),
#: so a hostile or damaged body cannot make a reader allocate without bound
MAX_INFLATED = 512 * 1024 * 1024


def _digest(body: bytes) -> bytes:
    return hashlib.blake2b(body, digest_size=DIGEST_SIZE).digest()


def seal(value: Any, compress: bool = False) -> tuple[str, bytes, bytes]:
    """``value`` in its sealed, stored form; its body compressed if ``compress``
    and that makes it smaller."""
    body = pickle.dumps(value, pickle.HIGHEST_PROTOCOL)
    if compress:
        packed = zlib.compress(body, COMPRESS_LEVEL)
        if len(packed) < len(body):
            return (COMPRESSED_SEAL_MARK, _digest(packed), packed)
    return (SEAL_MARK, _digest(body), body)


def is_sealed(stored: Any) -> bool:
    """Whether ``stored`` looks like a sealed value (its digest not checked yet)."""
    return type(stored) is tuple and len(stored) == 3 and stored[0] in SEAL_MARKS


def unseal(stored: Any, uid: str, key: str) -> Any:
    """The value sealed in ``stored``; an unsealed value (saved before sealing) as it is.

    StorageCorrupted naming ``uid`` and ``key`` if the digest does not match
    the body or the body does not inflate or unpickle.
    """
    if type(stored) is not tuple or not stored or stored[0] not in SEAL_MARKS:
        return stored
    if len(stored) != 3 or type(stored[1]) is not bytes or type(stored[2]) is not bytes:
        raise StorageCorrupted(uid, f"{key!r} is damaged: its seal is malformed")
    mark, digest, body = stored
    if _digest(body) != digest:
        raise StorageCorrupted(uid, f"{key!r} is damaged: its checksum does not match")
    if mark == COMPRESSED_SEAL_MARK:
        body = _inflated(body, uid, key)
    try:
        return pickle.loads(body)
    except DECODE_ERRORS as exc:
        raise StorageCorrupted(
            uid, f"{key!r} is damaged: its body does not decode ({type(exc).__name__})"
        ) from exc


def _inflated(packed: bytes, uid: str, key: str) -> bytes:
    """A compressed body inflated, at most :data:`MAX_INFLATED` bytes of it."""
    inflater = zlib.decompressobj()
    try:
        body = inflater.decompress(packed, MAX_INFLATED)
    except zlib.error as exc:
        raise StorageCorrupted(uid, f"{key!r} is damaged: its body does not inflate ({exc})") from exc
    if inflater.unconsumed_tail:
        raise StorageCorrupted(
            uid, f"{key!r} is damaged: its body inflates past {MAX_INFLATED} bytes"
        )
    if not inflater.eof or inflater.unused_data:
        raise StorageCorrupted(uid, f"{key!r} is damaged: its compressed body is cut short or runs on")
    return body
