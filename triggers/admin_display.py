"""What the admin shows of stored values: decoded, laid out, and safe to put in a page.

A session holds whatever applications and their tasks put in it, so every
value shown may be hostile: HTML (escaped here, by ``format_html``), control
characters (shown as ``\\xNN`` escapes, as the operator commands print
them), a ``__repr__`` that raises, or a value that no longer unpickles
(shown as such, never as a server error).
"""

from __future__ import annotations

import logging
import pprint
from collections.abc import Mapping
from typing import Any

from django.utils.html import format_html
from django.utils.safestring import SafeString

from .errors import StorageCorrupted, safe_repr
from .models import Instance, Session
from .operations.terminal import printable, printable_lines
from .storages.database.rows import loads
from .types import TaskInstance

__all__ = [
    "LOG_LEVELS",
    "decoded",
    "error_line",
    "instance_metadata",
    "level_name",
    "preformatted",
    "session_metadata",
    "traceback_text",
    "without_traceback",
]

#: the log levels the instance list filters on (at least that level)
LOG_LEVELS = (logging.DEBUG, logging.INFO, logging.WARNING, logging.ERROR, logging.CRITICAL)
#: the longest error line the instance list shows
ERROR_LINE_LENGTH = 160


class Unreadable:
    """A stored value that does not unpickle: shown as the reason."""

    def __init__(self, reason: str) -> None:
        self.reason = reason


def decoded(uid: str, data: Any, what: str) -> Any:
    """A pickled column's value, or an :class:`Unreadable` saying why it is not one."""
    try:
        return loads(uid, data, what)
    except StorageCorrupted as exc:
        return Unreadable(str(exc))


def _laid_out(value: Any) -> str:
    """``value`` as readable text: pretty-printed, or a short repr if that fails."""
    if isinstance(value, Unreadable):
        return f"(unreadable: {value.reason})"
    try:
        text = pprint.pformat(value, width=100, sort_dicts=True)
    except Exception:
        text = safe_repr(value)
    return text if type(text) is str else safe_repr(value)


def preformatted(value: Any) -> SafeString:
    """``value`` in a ``<pre>``: laid out (text as it is), control characters escaped."""
    text = value if type(value) is str else _laid_out(value)
    return format_html('<pre class="triggers-value">{}</pre>', printable_lines(text))


def instance_metadata(instance: Instance) -> Any:
    """The decoded metadata of an instance row (an :class:`Unreadable` if it is not)."""
    return decoded(instance.session.uid, instance.metadata, f"the metadata of {instance.name!r}")


def traceback_text(metadata: Any) -> str | None:
    """The recorded traceback (``exceptionInfo``) as text, or None when there is none."""
    if not isinstance(metadata, Mapping):
        return None
    info = metadata.get(TaskInstance.META_EXCEPTION_INFO)
    if info is None or info == "":
        return None
    return info if type(info) is str else _laid_out(info)


def error_line(metadata: Any) -> str:
    """The error in one line: the traceback's last line (``ValueError: ...``), shortened."""
    text = traceback_text(metadata)
    if text is None:
        return ""
    lines = [line for line in text.splitlines() if line.strip()]
    line = printable(lines[-1].strip()) if lines else ""
    if len(line) > ERROR_LINE_LENGTH:
        line = line[: ERROR_LINE_LENGTH - 3] + "..."
    return line


def level_name(level: int | None) -> str:
    """A log level by name (``ERROR``), or its number for one that has none."""
    if level is None:
        return ""
    name = logging.getLevelName(level)
    return name if isinstance(name, str) and not name.startswith("Level ") else str(level)


def session_metadata(session: Session) -> Any:
    """The decoded metadata of a session row."""
    return decoded(session.uid, session.metadata, "its metadata")


def without_traceback(metadata: Any) -> Any:
    """Metadata without ``exceptionInfo`` (the page shows the traceback on its own)."""
    if isinstance(metadata, Mapping) and TaskInstance.META_EXCEPTION_INFO in metadata:
        return {k: v for k, v in metadata.items() if k != TaskInstance.META_EXCEPTION_INFO}
    return metadata
