"""Session values as JSON that loads back exactly.

JSON has no datetime, set, tuple or bytes, and its object keys are strings;
a session holds all of these (timestamps are datetimes, kwargs are whatever
the application fired). Each such value becomes a tagged object
``{"$triggers": KIND, "value": ...}``; a dict that JSON cannot hold as it is
(a key that is not a string, or the tag itself as a key) becomes the kind
``dict`` with its items as pairs. Types are matched exactly: a subclass
(an ``OrderedDict``, a ``str`` subclass) would come back as its base, so it
is refused rather than changed.
"""

from __future__ import annotations

import base64
import json
import math
import uuid
from collections.abc import Callable
from datetime import date, datetime, time, timedelta, timezone, tzinfo
from decimal import Decimal
from typing import Any

__all__ = ["TAG", "UnencodableValue", "decode", "encode"]

TAG = "$triggers"


class UnencodableValue(ValueError):
    """A value the dump format cannot carry exactly; says where it is."""

    def __init__(self, path: str, value: Any, reason: str = "") -> None:
        kind = f"{type(value).__module__}.{type(value).__qualname__}"
        why = f" ({reason})" if reason else ""
        super().__init__(f"cannot dump {path}: a {kind} value{why}, {value!r:.60}")


def _zone(value: tzinfo | None, path: str, holder: Any) -> str | None:
    """How a tzinfo is written: None (naive or a fixed offset in the ISO text) or a zone key."""
    if value is None or isinstance(value, timezone):
        return None
    key = getattr(value, "key", None)
    if type(value).__name__ == "ZoneInfo" and isinstance(key, str):
        return key
    raise UnencodableValue(path, holder, "a time zone other than a fixed offset or a ZoneInfo")


def _tagged(kind: str, value: Any, zone: str | None = None) -> dict[str, Any]:
    tagged = {TAG: kind, "value": value}
    if zone is not None:
        tagged["zone"] = zone
    return tagged


def _canonical(value: Any) -> str:
    return json.dumps(value, sort_keys=True, ensure_ascii=False)


def encode(value: Any, path: str = "value") -> Any:
    """``value`` as JSON data that :func:`decode` turns back into an equal value."""
    kind = type(value)
    if value is None or kind in (str, bool):
        return value
    if kind is int:
        return value
    if kind is float:
        return value if math.isfinite(value) else _tagged("float", repr(value))
    if kind is list:
        return [encode(item, f"{path}[{n}]") for n, item in enumerate(value)]
    if kind is dict:
        if all(type(key) is str for key in value) and TAG not in value:
            return {key: encode(item, f"{path}[{key!r}]") for key, item in value.items()}
        pairs = [
            [encode(key, f"{path} key {key!r}"), encode(item, f"{path}[{key!r}]")]
            for key, item in value.items()
        ]
        return _tagged("dict", pairs)
    if kind is tuple:
        return _tagged("tuple", [encode(item, f"{path}[{n}]") for n, item in enumerate(value)])
    if kind in (set, frozenset):
        items = sorted((encode(item, f"{path} item") for item in value), key=_canonical)
        return _tagged(kind.__name__, items)
    if kind is bytes:
        return _tagged("bytes", base64.b64encode(value).decode("ascii"))
    if kind is datetime or kind is time:
        return _tagged(kind.__name__, value.isoformat(), _zone(value.tzinfo, path, value))
    if kind is date:
        return _tagged("date", value.isoformat())
    if kind is timedelta:
        return _tagged("timedelta", [value.days, value.seconds, value.microseconds])
    if kind is Decimal:
        return _tagged("decimal", str(value))
    if kind is uuid.UUID:
        return _tagged("uuid", str(value))
    raise UnencodableValue(path, value)


def _with_zone(value: Any, zone: Any) -> Any:
    if zone is None:
        return value
    from zoneinfo import ZoneInfo

    return value.replace(tzinfo=ZoneInfo(zone))


_DECODERS: dict[str, Callable[[Any], Any]] = {
    "float": float,
    "tuple": lambda items: tuple(decode(item) for item in items),
    "set": lambda items: {decode(item) for item in items},
    "frozenset": lambda items: frozenset(decode(item) for item in items),
    "bytes": lambda text: base64.b64decode(text.encode("ascii"), validate=True),
    "datetime": datetime.fromisoformat,
    "time": time.fromisoformat,
    "date": date.fromisoformat,
    "timedelta": lambda parts: timedelta(days=parts[0], seconds=parts[1], microseconds=parts[2]),
    "decimal": Decimal,
    "uuid": uuid.UUID,
    "dict": lambda pairs: {decode(key): decode(item) for key, item in pairs},
}


def decode(data: Any) -> Any:
    """The value :func:`encode` gave ``data`` for; ValueError for data it never writes."""
    if isinstance(data, list):
        return [decode(item) for item in data]
    if not isinstance(data, dict):
        return data
    if TAG not in data:
        return {key: decode(item) for key, item in data.items()}
    kind, value = data[TAG], data.get("value")
    decoder = _DECODERS.get(kind) if isinstance(kind, str) else None
    if decoder is None:
        raise ValueError(f"unknown kind of value {kind!r}")
    try:
        decoded = decoder(value)
        return _with_zone(decoded, data.get("zone")) if kind in ("datetime", "time") else decoded
    except Exception as exc:
        raise ValueError(f"cannot read a {kind} from {value!r:.60}: {exc}") from None
