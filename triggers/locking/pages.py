"""Small values kept together: entries of one page, stored under one key.

A key that holds a newline names an *entry*: the text before the newline is
the key of the page it lives in, the text after it the entry's name.
Session uids and every other key this package makes hold no whitespace, so
no other key reads so. A driver that keeps pages (the Redis drivers) reads
and writes such keys as entries of their page; the page is what the server
stores, with one key's overhead for all its entries.

A page is stored as it is (see :mod:`.raw_values`)::

    PAGE_MARK + (name length + name + value length + value) ...

each length four bytes, big-endian, and the name UTF-8. An entry's value
is a value stored as it is (it starts with ``RAW_MARK``), kept without
that mark, which every entry shares, and given back with it. Entries are written
into a page on the server (a patch merged in by the script that writes),
so a save sends only the entries it changes. A value carries its own check
(a record's checksum covers its name), so damage inside one is found where
it is decoded; a page whose framing does not add up is
:class:`~triggers.locking.failures.UndecodableValue` naming the page.
"""

from __future__ import annotations

import itertools
import struct
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any

from .drivers.base import UndecodableValue
from .raw_values import RAW_MARK, is_raw

__all__ = [
    "DAMAGED_PAGE",
    "PAGE_MARK",
    "PATCH_MARK",
    "PagedRead",
    "damaged_page_refusal",
    "decode_page",
    "encode_entries",
    "entry_spans",
    "entry_address",
    "entry_key",
    "entry_stored",
    "paged_writes",
]

#: what every stored page starts with
PAGE_MARK = RAW_MARK + b"p"
#: what a patch sent to the server starts with: entries to merge into the page
PATCH_MARK = RAW_MARK + b"q"
#: parts a key naming an entry: the page's key before it, the entry's name after
SEPARATOR = "\n"
#: how a script that writes says it met a damaged page (and wrote nothing)
DAMAGED_PAGE = "TRIGGERS_DAMAGED_PAGE"

_LENGTH = struct.Struct(">I")
_MARK_SIZE = len(RAW_MARK)


def entry_key(page_key: str, name: str) -> str:
    """The key naming entry ``name`` of the page stored under ``page_key``."""
    return f"{page_key}{SEPARATOR}{name}"


def entry_address(key: str) -> tuple[str, str] | None:
    """The page key and entry name ``key`` names, or None for a key of its own."""
    page_key, separator, name = key.partition(SEPARATOR)
    return (page_key, name) if separator else None


def entry_stored(key: str, value: Any) -> bytes:
    """How the value of entry ``key`` is kept in its page (without ``RAW_MARK``);
    TypeError unless it is a value stored as it is."""
    if not is_raw(value):
        raise TypeError(
            f"entry {key!r} must be a value stored as it is, not {type(value).__name__}"
        )
    return bytes(value[_MARK_SIZE:])


def encode_entries(entries: Mapping[str, bytes], mark: bytes = PAGE_MARK) -> bytes:
    """``entries`` (values stored as they are) framed as a page, or with
    ``PATCH_MARK`` as a patch; TypeError naming an entry that is not such a value."""
    pack = _LENGTH.pack
    parts = [mark]
    for name, value in entries.items():
        encoded = name.encode("utf-8", "surrogatepass")
        kept = entry_stored(name, value)
        parts += (pack(len(encoded)), encoded, pack(len(kept)), kept)
    return b"".join(parts)


def decode_page(page_key: str, stored: Any) -> dict[str, bytes]:
    """The entries of a stored page (each value whole again, with ``RAW_MARK``);
    UndecodableValue naming ``page_key`` if its framing does not add up."""
    mark = RAW_MARK
    return {
        name: mark + stored[start:end]
        for name, (start, end) in entry_spans(page_key, stored).items()
    }


def entry_spans(page_key: str, stored: Any) -> dict[str, tuple[int, int]]:
    """Where the value of each entry of a stored page lies in ``stored``: its
    start and end (without ``RAW_MARK``) by the entry's name, so that a
    reader of many entries can take each one in place. A name written twice
    (no save writes one so) is its last entry, as the server's merge reads
    it. UndecodableValue naming ``page_key`` if ``stored`` is no page or its
    framing does not add up."""
    if type(stored) is not bytes or not stored.startswith(PAGE_MARK):
        raise UndecodableValue(f"{page_key!r} does not hold a page")
    spans: dict[str, tuple[int, int]] = {}
    unpack, end, at = _LENGTH.unpack_from, len(stored), len(PAGE_MARK)
    try:
        while at < end:
            name_end = at + 4 + unpack(stored, at)[0]
            value_end = name_end + 4 + unpack(stored, name_end)[0]
            if value_end > end:
                raise struct.error("past the end")
            name = stored[at + 4 : name_end].decode("utf-8", "surrogatepass")
            spans[name] = (name_end + 4, value_end)
            at = value_end
    except struct.error as exc:  # a length read past the end, or a value running past it
        raise UndecodableValue(f"{page_key!r} is damaged: an entry runs past its end") from exc
    except UnicodeDecodeError as exc:
        raise UndecodableValue(f"{page_key!r} is damaged: an entry's name is not UTF-8") from exc
    return spans


def damaged_page_refusal(exc: BaseException) -> UndecodableValue | None:
    """The error to raise for a script's refusal to merge into a damaged page
    (``exc``, the client's error), or None when ``exc`` is another error."""
    text = str(exc)
    if not text.startswith(DAMAGED_PAGE + " "):
        return None
    page_key = text[len(DAMAGED_PAGE) + 1 :].split(" script:", 1)[0]
    return UndecodableValue(
        f"{page_key!r} is damaged (it is not a page this package wrote): nothing was written"
    )


class PagedRead:
    """A read of ``keys`` as the server is asked it: each page once, for all the
    entries of it that are wanted, and every other key as it is."""

    def __init__(self, keys: Sequence[str]) -> None:
        self.keys = keys
        self.addresses = [entry_address(key) for key in keys]
        #: the keys to ask the server for, each once
        self.server_keys = list(
            dict.fromkeys(key if at is None else at[0] for key, at in zip(keys, self.addresses))
        )

    @staticmethod
    def needed(keys: Iterable[str]) -> bool:
        """Whether any of ``keys`` names an entry (else a plain read does)."""
        # In C, key by key: this runs on every read of a driver that keeps pages.
        return any(map(str.__contains__, keys, itertools.repeat(SEPARATOR)))

    def found(self, raw: Sequence[Any], decode: Callable[[Any], Any]) -> dict[str, Any]:
        """The values found, by the keys asked: entries as stored (each checks
        itself), other values decoded with ``decode``."""
        answers = dict(zip(self.server_keys, raw))
        pages: dict[str, dict[str, bytes]] = {}
        found: dict[str, Any] = {}
        for key, address in zip(self.keys, self.addresses):
            if address is None:
                value = answers.get(key)
                if value is not None and value is not False:
                    found[key] = decode(value)
                continue
            page_key, name = address
            entries = pages.get(page_key)
            if entries is None:
                stored = answers.get(page_key)
                entries = {} if stored is None or stored is False else decode_page(page_key, stored)
                pages[page_key] = entries
            value = entries.get(name)
            if value is not None:
                found[key] = value
        return found


def paged_writes(items: Iterable[tuple[str, Any]]) -> list[tuple[str, Any]]:
    """``items`` (key, value) as the server is sent them: the entries of each
    page gathered into one patch under the page's key (in the place of its
    first entry), other keys as they are."""
    written: dict[str, Any] = {}
    patches: dict[str, dict[str, bytes]] = {}
    for key, value in items:
        address = entry_address(key)
        if address is None:
            written[key] = value
            continue
        page_key, name = address
        if page_key not in patches:
            patches[page_key] = {}
            written[page_key] = None  # its place
        patches[page_key][name] = value
    for page_key, entries in patches.items():
        written[page_key] = encode_entries(entries, PATCH_MARK)
    return list(written.items())
