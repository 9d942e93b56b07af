"""What a cache session is stored as: the layouts, the split head's mark,
and the check that a record can be stored at all."""

from __future__ import annotations

import pickle
from typing import Any

from ...errors import UnserializableValue

__all__ = [
    "DEVELOPMENT_FORMATS",
    "EARLIER_FORMATS",
    "EARLIER_PAGED_FORMATS",
    "HEAD_FORMAT",
    "HEAD_FORMATS",
    "LAYOUTS",
    "LAYOUT_PAGED",
    "LAYOUT_SINGLE",
    "LAYOUT_SPLIT",
    "PAGED_FORMAT",
    "READ_FORMATS",
    "WRITTEN_FORMATS",
    "LEGACY_REFUSAL",
    "is_unknown_format",
    "pickled",
]

#: one key per instance beside a small head (the default)
LAYOUT_SPLIT = "split"
#: the whole session in one value, as Triggers 2.x stores it
LAYOUT_SINGLE = "single"
#: the split layout with its records kept together, in pages of
#: :data:`~.keys.PAGE_RECORDS` (Redis only; opt-in)
LAYOUT_PAGED = "paged"
LAYOUTS = (LAYOUT_SPLIT, LAYOUT_SINGLE, LAYOUT_PAGED)

#: marks a split head (its content sealed under "sealed", compressed where
#: that is smaller, see .sealing), its parts under the part prefix and its
#: witness carrying a token per save
HEAD_FORMAT = "triggers/split-4"
#: marks a head of the paged layout: as a split head, its records in pages
PAGED_FORMAT = "triggers/paged-2"
#: marks of paged heads written by earlier versions (the same pages)
EARLIER_PAGED_FORMATS = ("triggers/paged-1",)
#: marks of heads written by earlier versions, which sealed the head and task
#: tables uncompressed and were otherwise the same: read, and saved again in
#: this version's marks
EARLIER_FORMATS = ("triggers/split-3", *EARLIER_PAGED_FORMATS)
#: the head marks this version writes
WRITTEN_FORMATS = (HEAD_FORMAT, PAGED_FORMAT)
#: the head marks this version reads as sessions of its own
READ_FORMATS = (*WRITTEN_FORMATS, *EARLIER_FORMATS)
#: marks of split heads saved by development versions (parts under other
#: keys): recognised, to be refused with a message that says what to do
DEVELOPMENT_FORMATS = ("triggers/split-1", "triggers/split-2")
#: the split head marks a reader recognises
HEAD_FORMATS = (*READ_FORMATS, *DEVELOPMENT_FORMATS)

#: what every head format of this package starts with
FORMAT_FAMILY = "triggers/"


def is_unknown_format(mark: object) -> bool:
    """Whether a head's ``format`` names one of this package's formats that this
    version does not know (a newer version's, as this version reads it)."""
    return isinstance(mark, str) and mark.startswith(FORMAT_FAMILY) and mark not in HEAD_FORMATS


#: what a split head holds under the keys Triggers 2.x reads a session from:
#: an entry 2.x cannot turn into a task configuration (nor into an instance),
#: so a 2.x process that meets a split session fails as it loads it, before
#: it can save anything over it
LEGACY_REFUSAL: dict[str, dict[str, str]] = {
    key: {"!split-layout": "stored in the split layout of triggers 3; 2.x cannot read it"}
    for key in ("tasks", "instances")
}


def pickled(name: str, record: Any) -> bytes:
    """``record`` pickled, or UnserializableValue naming the instance."""
    try:
        return pickle.dumps(record, pickle.HIGHEST_PROTOCOL)
    except Exception as exc:
        raise UnserializableValue(f"task instance {name!r}", record, exc) from exc
