"""``list`` and ``clearsessions``: the sessions of a database, found by what they hold.

Both need a storage that can look across sessions: the database storage
backend. ``list`` prints a page of sessions at a time, newest change
first; ``clearsessions`` deletes the expired ones in batches.
"""

from __future__ import annotations

import datetime as dt
import math
from collections.abc import Mapping
from typing import Any

from .common import (
    BadInput,
    Place,
    Writer,
    database_alias,
    iso,
    storage_class,
    takes_database,
    write_json,
)
from .terminal import printable

__all__ = ["clear_sessions", "list_sessions"]

DEFAULT_PER_PAGE = 50
LONGEST_PAGE = 1000
_COLUMNS = ("uid", "instances", "failed", "unresolved", "waiting", "last modified", "expires")


def _database(place: Place) -> str:
    """The database alias to look in; BadInput for a backend that cannot look across sessions."""
    from ..storages.database.backend import database_alias as routed  # needs the app registry

    cls = storage_class(place)
    if not takes_database(cls):
        raise BadInput(
            f"storage {place.storage!r} ({cls.__name__}) cannot look across sessions;"
            " only the database storage backend can (--storage database)"
        )
    return routed(None) if place.using is None else database_alias(place.using)


def _seconds(value: float | None, option: str) -> float | None:
    if value is not None and not (math.isfinite(value) and value >= 0):
        raise BadInput(f"{option} must be a finite number of seconds, 0 or more, not {value:g}")
    return value


def _when(text: str | None, option: str) -> dt.datetime | None:
    if text is None:
        return None
    try:
        value = dt.datetime.fromisoformat(text)
    except ValueError:
        raise BadInput(f"{option} must be an ISO 8601 date or time, not {text!r}") from None
    return value if value.tzinfo else value.replace(tzinfo=dt.timezone.utc)


def _page_numbers(options: Mapping[str, Any]) -> tuple[int, int]:
    page, per_page = options.get("page", 1), options.get("per_page", DEFAULT_PER_PAGE)
    if page < 1:
        raise BadInput(f"--page must be 1 or more, not {page}")
    if not 1 <= per_page <= LONGEST_PAGE:
        raise BadInput(f"--per-page must be from 1 to {LONGEST_PAGE}, not {per_page}")
    return page, per_page


def _row(session: Any) -> dict[str, Any]:
    return {
        "uid": session.uid,
        "instances": session.instance_count,
        "failed": session.failed_count,
        "unresolved": session.unresolved_count,
        "waiting": session.running_count,
        "modified": iso(session.modified),
        "expires": iso(session.expires) if session.expires else None,
    }


def list_sessions(options: Mapping[str, Any], place: Place, out: Writer) -> None:
    """Print one page of the sessions the options ask for."""
    from ..storages.database.locks import reaching  # needs the app registry

    using = _database(place)
    page, per_page = _page_numbers(options)
    with reaching(using, "listing sessions"):
        _list_page(options, using, page, per_page, out)


def _list_page(
    options: Mapping[str, Any], using: str, page: int, per_page: int, out: Writer
) -> None:
    from ..storages.database.queries import find_sessions, with_counts  # needs the app registry

    rows = find_sessions(
        using,
        failed=options.get("failed", False),
        unresolved=options.get("unresolved", False),
        stuck_for=_seconds(options.get("stuck"), "--stuck"),
        task=options.get("task"),
        modified_after=_when(options.get("modified_after"), "--modified-after"),
        modified_before=_when(options.get("modified_before"), "--modified-before"),
    )
    total = rows.count()
    pages = max(1, math.ceil(total / per_page))
    found = [_row(s) for s in with_counts(rows)[(page - 1) * per_page : page * per_page]]
    if options.get("json"):
        write_json(out, {"sessions": found, "page": page, "pages": pages, "count": total})
        return
    _write_table(found, out)
    more = f"; next: --page {page + 1}" if page < pages else ""
    out.write(f"page {page} of {pages} ({total} sessions){more}\n")


def _write_table(found: list[dict[str, Any]], out: Writer) -> None:
    if not found:
        out.write("no sessions\n")
        return
    cells = [
        [
            printable(str(r["uid"])),
            str(r["instances"]),
            str(r["failed"]),
            str(r["unresolved"]),
            str(r["waiting"]),
            (r["modified"] or "-")[:19].replace("T", " "),
            (r["expires"] or "never")[:19].replace("T", " "),
        ]
        for r in found
    ]
    widths = [max(len(h), *(len(c[i]) for c in cells)) for i, h in enumerate(_COLUMNS)]
    for line in [list(_COLUMNS), ["-" * w for w in widths], *cells]:
        out.write("  ".join(cell.ljust(w) for cell, w in zip(line, widths)).rstrip() + "\n")


def clear_sessions(options: Mapping[str, Any], place: Place, out: Writer) -> None:
    """Delete the expired sessions' rows, in batches."""
    from ..storages.database.expiry import clear_expired_sessions  # needs the app registry

    using = _database(place)
    batch = options.get("batch_size", 500)
    if batch < 1:
        raise BadInput(f"--batch-size must be 1 or more, not {batch}")
    from ..storages.database.locks import reaching

    with reaching(using, "deleting expired sessions"):
        deleted = clear_expired_sessions(using, batch)
    if options.get("json"):
        write_json(out, {"deleted": deleted})
        return
    out.write(f"deleted {deleted} expired session{'s' if deleted != 1 else ''}\n")
