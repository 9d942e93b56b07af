"""How one instance record of a split session is stored under its own key.

A record is stored as bytes that are also a pickle of its fields as a
tuple (no field names: they were most of a record's size)::

    RECORD_MARK + crc32(instance name + body) + POP + body

``RECORD_MARK`` starts a pickle whose first item is eight bytes (the mark's
last four and the checksum), which ``POP`` drops; ``body`` is the tuple's
pickle without its header. This package checks the checksum and then
unpickles the whole; a cache's own ``get`` unpickles it to the tuple.

The checksum covers the instance's name as well as the body, so a record
copied by hand under another instance's key is caught as damage, as is a
flipped bit that still unpickles. CRC-32 is there to catch damage, not an
attacker: whoever can write to the cache can write any session anyway.

Records stored by earlier versions (a sealed tuple, see :mod:`.sealing`, or
a plain dict) still read, so sessions saved before keep working; each is
rewritten in this form when a save changes it or refreshes the session.
"""

from __future__ import annotations

import pickle
import struct
import zlib
from typing import Any

from ...errors import StorageCorrupted
from ...locking.pages import entry_key
from ...locking.raw_values import RAW_MARK
from .formats import pickled
from .sealing import unseal

__all__ = [
    "RECORD_FIELDS",
    "RECORD_MARK",
    "FieldTuple",
    "as_record",
    "decode_record",
    "encode_record",
    "entry_fields",
    "plain_record_at",
    "plain_fields",
    "record_fields",
]

#: starts every record stored in this form (stored as it is on Redis: see
#: :mod:`triggers.locking.raw_values`)
RECORD_MARK = RAW_MARK + b"r"
_CRC_START = len(RECORD_MARK)
_CRC_END = _CRC_START + 4
#: reads the stored checksum (four bytes, big-endian) where it lies
_stored_checksum = struct.Struct(">I").unpack_from
#: POP, which drops the mark and checksum from what the pickle gives
_POP = b"0"
_BODY_START = _CRC_END + len(_POP)
#: the same places in a record kept as a page entry, whose ``RAW_MARK`` the page keeps
_ENTRY_MARK = RECORD_MARK[len(RAW_MARK) :]
_ENTRY_MARK_SIZE = len(_ENTRY_MARK)
_ENTRY_MARK_BYTE = _ENTRY_MARK[0]
_ENTRY_CRC_START = _CRC_START - len(RAW_MARK)
_ENTRY_CRC_END = _CRC_END - len(RAW_MARK)
_ENTRY_BODY_START = _BODY_START - len(RAW_MARK)
_MISMATCH = "its checksum does not match (or it is another instance's)"
#: the record's fields, in the order the tuple holds them (serialize()'s: a record
#: read back pickles as the instance's own, so an unchanged one is not rewritten)
RECORD_FIELDS = ("abandonState", "kwargs", "metadata", "status", "task")
#: what a protocol 4+ pickle starts with: PROTO n, then FRAME and its size
_FRAMED = 0x95
#: the size of PROTO n, which the body leaves to the mark
_PROTO_SIZE = 2


def _checksum(name: str, body: bytes | memoryview) -> int:
    """The CRC-32 a record carries: of the instance's name, then of its body."""
    return zlib.crc32(body, zlib.crc32(name.encode("utf-8", "surrogatepass")))


def _body(pickled_fields: bytes) -> bytes:
    """The fields' pickle without its header (PROTO and one FRAME: a small
    pickle needs no frame, and the mark starts the stored pickle)."""
    if len(pickled_fields) > 11 and pickled_fields[2] == _FRAMED:
        return pickled_fields[11:]
    return pickled_fields[_PROTO_SIZE:]


def encode_record(name: str, record: dict[str, Any]) -> bytes:
    """The stored form of the record of instance ``name`` (as ``serialize()`` made it).

    UnserializableValue naming the instance if a field does not pickle.
    """
    fields: tuple[Any, ...] = tuple(record.get(field) for field in RECORD_FIELDS)
    if record.keys() - set(RECORD_FIELDS):  # fields of another version: the dict as it is
        fields = (record,)
    body = _body(pickled(name, fields))
    return RECORD_MARK + _checksum(name, body).to_bytes(4, "big") + _POP + body


def decode_record(stored: Any, name: str, uid: str, key: str) -> Any:
    """The record of instance ``name`` read from ``key`` (the dict ``serialize()`` made).

    Records of earlier versions are returned as they were stored; damage is
    StorageCorrupted naming ``uid`` and ``key``.
    """
    fields = record_fields(stored, name, uid, key)
    return as_record(fields) if type(fields) is FieldTuple else fields


def as_record(fields: tuple[Any, ...]) -> dict[str, Any]:
    """The record (the dict ``serialize()`` made) of fields :func:`record_fields` gave."""
    return dict(zip(RECORD_FIELDS, fields))


class FieldTuple(tuple):  # type: ignore[type-arg]
    """A record's fields in the order of ``RECORD_FIELDS``, as :func:`record_fields`
    gives them (a type of its own: a record of another version may be a tuple)."""

    __slots__ = ()


def record_fields(stored: Any, name: str, uid: str, key: str) -> Any:
    """The fields of the record of instance ``name`` read from ``key``: a
    :class:`FieldTuple` for a record in this form, else what :func:`decode_record`
    gives (a dict, or what an earlier version stored). Damage is StorageCorrupted
    naming ``uid`` and ``key``."""
    if type(stored) is not bytes or not stored.startswith(RECORD_MARK):
        return unseal(stored, uid, key)
    fields = _opened(stored, name, uid, key)
    if len(fields) == len(RECORD_FIELDS):
        return FieldTuple(fields)
    if len(fields) == 1:
        return fields[0]
    raise StorageCorrupted(uid, f"{key!r} is damaged: it holds no record")


def plain_fields(stored: Any, name: str, uid: str, key: str) -> tuple[Any, ...] | None:
    """The fields of a record in this form, in the order of ``RECORD_FIELDS``
    (a plain tuple: this runs once per record of a session read whole); None
    for any other record, which :func:`record_fields` reads. Damage is
    StorageCorrupted naming ``uid`` and ``key``."""
    if type(stored) is not bytes or not stored.startswith(RECORD_MARK):
        return None
    fields = _opened(stored, name, uid, key)
    return fields if len(fields) == len(RECORD_FIELDS) else None


def _opened(stored: bytes, name: str, uid: str, key: str) -> tuple[Any, ...]:
    """The tuple a record in this form holds, its checksum checked."""
    if len(stored) < _CRC_END:
        raise StorageCorrupted(uid, f"{key!r} is damaged: {_MISMATCH}")
    name_crc = zlib.crc32(name.encode("utf-8", "surrogatepass"))
    body = memoryview(stored)[_BODY_START:]
    fields = _checked(body, _stored_checksum(stored, _CRC_START)[0], name_crc)
    if isinstance(fields, str):
        raise StorageCorrupted(uid, f"{key!r} is damaged: {fields}")
    return fields


def entry_fields(page: bytes, start: int, end: int, name: str, uid: str, page_key: str) -> Any:
    """The fields of the record of instance ``name`` kept in ``page[start:end]``
    as an entry of the page stored under ``page_key`` (see
    :mod:`triggers.locking.pages`: the record without ``RAW_MARK``), read in
    place: a plain tuple as :func:`plain_fields` gives, else what
    :func:`record_fields` gives. Damage is StorageCorrupted naming ``uid``
    and the entry's key."""
    if page[start : start + _ENTRY_MARK_SIZE] != _ENTRY_MARK or end - start < _ENTRY_CRC_END:
        # Not of this form: read as a record stored under a key of its own.
        return record_fields(RAW_MARK + page[start:end], name, uid, entry_key(page_key, name))
    body = memoryview(page)[start + _ENTRY_BODY_START : end]
    name_crc = zlib.crc32(name.encode("utf-8", "surrogatepass"))
    fields = _checked(body, _stored_checksum(page, start + _ENTRY_CRC_START)[0], name_crc)
    if type(fields) is not str and len(fields) == len(RECORD_FIELDS):
        return fields
    if type(fields) is not str and len(fields) == 1:
        return fields[0]
    problem = "it holds no record" if type(fields) is not str else fields
    raise StorageCorrupted(uid, f"{entry_key(page_key, name)!r} is damaged: {problem}")


def plain_record_at(
    buffer: bytes, view: memoryview, start: int, end: int, name: str
) -> tuple[Any, ...] | None:
    """The fields of a plain record of this form lying in ``buffer[start:end]``
    without its ``RAW_MARK`` (a page entry, or a stored record past its first
    bytes; ``view`` is the buffer's memoryview), when it is whole: its
    checksum matches and it unpickles to the fields' tuple. None for
    anything else, which the general readers read and name. Once per record
    of a session read whole, so it makes no frame of its own below it."""
    if end - start < _ENTRY_CRC_END or buffer[start] != _ENTRY_MARK_BYTE:
        return None
    body = view[start + _ENTRY_BODY_START : end]
    name_crc = zlib.crc32(name.encode("utf-8", "surrogatepass"))
    if zlib.crc32(body, name_crc) != _stored_checksum(buffer, start + _ENTRY_CRC_START)[0]:
        return None
    try:
        fields = pickle.loads(body, fix_imports=False)
    except Exception:  # noqa: BLE001 - a general reader reads it again and names the damage
        return None
    if type(fields) is tuple and len(fields) == len(RECORD_FIELDS):
        return fields
    return None


def _checked(body: memoryview, stored_crc: int, name_crc: int) -> tuple[Any, ...] | str:
    """The tuple a record's ``body`` pickles once its checksum is checked, or
    what is wrong with it (for the caller to name the key)."""
    if zlib.crc32(body, name_crc) != stored_crc:
        return _MISMATCH
    try:
        # The body alone (its mark and checksum are no part of the fields);
        # no names of Python 2 modules are mapped, as in a pickle of protocol 5.
        fields = pickle.loads(body, fix_imports=False)
    except Exception as exc:  # a body that passed its checksum but is no pickle of ours
        return f"its body does not decode ({type(exc).__name__})"
    if type(fields) is not tuple or not fields:
        return "it holds no record"
    return fields
