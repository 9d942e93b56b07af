"""Values a Redis cache stores as they are, not through the cache's codec.

A cache client pickles every value it stores, bytes included: for the
many small records of a split session that wrapping costs about twenty
bytes each on the server and a second decode on every read. Bytes that
start with :data:`RAW_MARK` already carry their own format (and a check of
their own), so the Redis drivers store and return them unchanged.

Such bytes are a pickle themselves (protocol 5, whose first item is eight
bytes starting with the mark's last three), so the cache's own ``get``
still decodes them. The codec never makes a value that starts so: it
frames every pickle that long, so its pickles start ``PROTO 5, FRAME``.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Sequence
from typing import Any

from ..cache_internals import RedisCodec

__all__ = ["RAW_MARK", "decoded_found", "is_raw", "passing_raw"]

#: what every value stored as it is starts with: PROTO 5, SHORT_BINBYTES of
#: eight bytes, the first three of which are NUL, "T", "3"
RAW_MARK = b"\x80\x05C\x08\x00T3"


def is_raw(value: Any) -> bool:
    """Whether ``value`` is stored as it is."""
    return type(value) is bytes and value.startswith(RAW_MARK)


def decoded_found(
    names: Sequence[str], values: Sequence[Any], decode: Callable[[Any], Any]
) -> dict[str, Any]:
    """The values found (not None) by name, each stored as it is kept so and
    the others decoded with ``decode``: the test of :func:`is_raw` made inline,
    as this runs once per record of a session read whole."""
    found = {}
    mark = RAW_MARK
    for name, value in zip(names, values):
        if value is not None:
            raw = type(value) is bytes and value.startswith(mark)
            found[name] = value if raw else decode(value)
    return found


def _encode_passing(encode: Callable[[Any], Any]) -> Callable[[Any], Any]:
    def encode_or_keep(value: Any) -> Any:
        return value if is_raw(value) else encode(value)

    return encode_or_keep


def _decode_passing(decode: Callable[[Any], Any]) -> Callable[[Any], Any]:
    def decode_or_keep(raw: Any) -> Any:
        return raw if is_raw(raw) else decode(raw)

    return decode_or_keep


def _object_first(codec: RedisCodec) -> Callable[[Any], Any]:
    """The codec's decode, trying the (far more common) pickled object first:
    the client's own decode tries int() first, which for a pickle formats a
    message quoting every byte."""
    decode_object, decode = codec.decode_object, codec.decode

    def decode_any(raw: Any) -> Any:
        try:
            return decode_object(raw)
        except Exception:
            return decode(raw)  # an int, or whatever the client does itself

    return decode_any


def passing_raw(codec: RedisCodec) -> RedisCodec:
    """``codec``, leaving values stored as they are untouched both ways."""
    return dataclasses.replace(
        codec,
        encode=_encode_passing(codec.encode),
        decode=_decode_passing(_object_first(codec)),
        decode_object=_decode_passing(codec.decode_object),
    )
