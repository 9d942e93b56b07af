"""Instances built from whole pages: the paged layout's records read where they lie.

A whole read of a paged session asks for each page once by its own key and
takes every wanted record out of it in place: its checksum checked over
the page's bytes, its fields unpickled from them, no key made per record
and no entry copied. What it builds is what :mod:`.plain_build` builds
from records read one key each; the checks are the same.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from ...errors import StorageCorrupted
from ...locking.drivers.base import UndecodableValue
from ...locking.pages import entry_key, entry_spans
from .plain_build import PlainInstances
from .records import entry_fields, plain_record_at

__all__ = ["build_from_pages"]


def build_from_pages(
    pages: Mapping[str, Any],
    names_by_page: Mapping[str, list[str]],
    instances: PlainInstances,
    uid: str,
) -> list[str]:
    """Add to ``instances`` the records of the instances ``names_by_page``
    lists under each page's key, taken from the stored ``pages`` (by key; a
    page absent lacks them all); the keys naming the entries wanted that
    their pages lack.

    A page whose framing does not add up, or a damaged record, is
    StorageCorrupted naming ``uid`` and the entry's key.
    """
    missing: list[str] = []
    add, others = instances.add, instances.others
    for page_key, names in names_by_page.items():
        page = pages.get(page_key)
        if page is None:
            missing += (entry_key(page_key, name) for name in names)
            continue
        spans = _spans(page, page_key, names[0], uid)  # a page, if it returns
        view = memoryview(page)
        for name in names:
            span = spans.get(name)
            if span is None:
                missing.append(entry_key(page_key, name))
                continue
            start, end = span
            fields = plain_record_at(page, view, start, end, name)
            if fields is not None:
                add(name, fields)
                continue
            # Any other record, or damage: read the general way, which names it.
            fields = entry_fields(page, start, end, name, uid, page_key)
            if type(fields) is tuple:
                add(name, fields)
            else:
                others[name] = fields
    return missing


def _spans(stored: Any, page_key: str, first_name: str, uid: str) -> dict[str, tuple[int, int]]:
    """Where the entries of a stored page lie; StorageCorrupted naming the
    page's entry ``first_name`` if the page is damaged."""
    try:
        return entry_spans(page_key, stored)
    except UndecodableValue as exc:
        key = entry_key(page_key, first_name)
        raise StorageCorrupted(
            uid, f"{key!r} holds a value that cannot be decoded (UndecodableValue: {exc})"
        ) from exc
