"""What ``load`` refuses in a dump document before :mod:`.transfer` reads it.

A dump file is input like any other, and may have been written by hand or
by someone hostile. Two things in it would get past the checks of
:mod:`.transfer` and fail later, or worse: values nested so deeply that
decoding them exhausts the stack (a traceback instead of a refusal), and
names with a lone surrogate, which is not valid Unicode. The storage keys
instances and triggers by their UTF-8 bytes, which such a name has none
of, so a session loaded with one could be neither read nor mended; a
metadata key with one is refused alike, as the session could then no
longer be dumped to a (UTF-8) file. Both are refused here, with one line
naming what is wrong, before anything is written.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from ..names import is_name
from ..storages.validation import MAX_DEPTH
from ..types import TaskInstance
from .codec import decode
from .common import BadInput

__all__ = ["DUMP_DEPTH", "check_document", "nesting"]

#: Deepest nesting of a document that holds only what a session can: a
#: stored value nests at most MAX_DEPTH containers, each written in at most
#: three JSON levels (a dict with keys other than strings: a tagged object,
#: its list of pairs, a pair), under the few levels of the document itself.
DUMP_DEPTH = 3 * MAX_DEPTH + 10


def nesting(value: Any) -> int:
    """How deeply JSON data nests lists and dicts, found without recursion."""
    deepest, pending = 0, [(value, 1)]
    while pending:
        item, depth = pending.pop()
        if isinstance(item, dict):
            children: Any = item.values()
        elif isinstance(item, list):
            children = item
        else:
            continue
        deepest = max(deepest, depth)
        pending.extend((child, depth + 1) for child in children)
    return deepest


def _keys(value: Any) -> list[Any]:
    return list(value) if isinstance(value, dict) else []


def _items(value: Any) -> list[Any]:
    return value if isinstance(value, list) else []


def _names(instances: dict[Any, Any], metas: dict[Any, Any]) -> Iterator[tuple[str, Any, str]]:
    """(what it is, the name, where it is) for the names of a session that the
    storage keys or reads back as names. Task and trigger names of the tasks
    are not among them: :meth:`TaskConfig.from_definition` refuses bad ones."""
    for name, data in instances.items():
        yield "instance name", name, ""
        where = f" of instance {name!r}"
        data = data if isinstance(data, dict) else {}
        for trigger in _items(data.get("abandonState")):
            yield "trigger name", trigger, f" in the abandonState{where}"
        for trigger in _keys(data.get("kwargs")):
            yield "trigger name", trigger, f" in the kwargs{where}"
        metadata = data.get("metadata")
        for key in _keys(metadata):
            yield "metadata key", key, where
        if isinstance(metadata, dict):
            yield "parent instance name", metadata.get(TaskInstance.META_PARENT), where
    for key in _keys(metas):
        yield "session metadata key", key, ""
    for trigger in _keys(metas.get("latest_kwargs")):
        yield "trigger name", trigger, " in latest_kwargs"


def _check_names(instances: Any, metas: Any) -> None:
    if not (isinstance(instances, dict) and isinstance(metas, dict)):
        return  # not a session at all: transfer says so
    for what, name, where in _names(instances, metas):
        if isinstance(name, str) and name and not is_name(name):
            raise BadInput(
                f"the dump has the {what} {name!r}{where}, which a session cannot hold:"
                " it is not valid Unicode (a lone surrogate)"
            )


def check_document(document: dict[str, Any], path: str) -> None:
    """BadInput for a dump nested deeper than a session can be, or naming a name
    a session cannot hold; anything else wrong is left for :mod:`.transfer` to name."""
    depth = nesting(document)
    if depth > DUMP_DEPTH:
        raise BadInput(
            f"{path} nests values {depth} levels deep; a session dump nests them"
            f" at most {DUMP_DEPTH} deep (values at most {MAX_DEPTH})"
        )
    try:
        instances, metas = (decode(document.get(part)) for part in ("instances", "metas"))
    except ValueError:
        return  # transfer refuses the document, naming the value
    _check_names(instances, metas)
