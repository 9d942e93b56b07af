"""Stored text made safe to print: no control character reaches the operator's terminal.

A session holds whatever applications and their tasks put in it: names,
error messages, tracebacks, kwargs, results. Printed as it is, a control
character in one of them drives the terminal that shows it (``ESC ]0;...
BEL`` retitles the window, ``ESC [2J`` clears it; C1 characters such as
U+009B do the same on some terminals) and a newline forges a line of the
report. So the commands print every C0 control character (U+0000-U+001F,
the newline and tab included), DEL (U+007F) and C1 control character
(U+0080-U+009F) of stored text as ``\\xNN``, its code in two hex digits,
and a lone surrogate (which no encoding of a terminal takes) as
``\\udNNN``. A backslash is printed as it is, so ``\\x1b`` in the output
may also be those four characters stored.

JSON output keeps to JSON: :func:`json_text` writes those characters as
``\\uNNNN`` escapes, which give back the stored text when the JSON is read.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from typing import Any, Protocol

__all__ = [
    "TerminalWriter",
    "Writer",
    "json_line",
    "json_safe",
    "json_text",
    "printable",
    "printable_data",
    "printable_lines",
]


class Writer(Protocol):
    """Where a command prints: a text stream, or Django's ``OutputWrapper``."""

    def write(self, text: str) -> Any: ...

#: C0, DEL, C1 and lone surrogates: what is never printed as it is
_UNSAFE = re.compile("[\x00-\x1f\x7f-\x9f\ud800-\udfff]")
#: the same but for the newline, for text the command itself cut into lines
_UNSAFE_BUT_NEWLINE = re.compile("[\x00-\x09\x0b-\x1f\x7f-\x9f\ud800-\udfff]")


def _visible(match: re.Match[str]) -> str:
    code = ord(match.group())
    return f"\\x{code:02x}" if code < 0x100 else f"\\u{code:04x}"


def _json_escape(match: re.Match[str]) -> str:
    return f"\\u{ord(match.group()):04x}"


def printable(text: str) -> str:
    """``text`` on one line with every control character shown as an escape."""
    return _UNSAFE.sub(_visible, text)


def printable_lines(text: str) -> str:
    """Like :func:`printable`, but newlines are kept: for text the command laid out."""
    return _UNSAFE_BUT_NEWLINE.sub(_visible, text)


def printable_data(value: Any) -> Any:
    """Plain data (as :func:`.common.plain` gives) with every text in it printable."""
    if isinstance(value, str):
        return printable(value)
    if isinstance(value, Mapping):
        return {printable(str(key)): printable_data(item) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return [printable_data(item) for item in value]
    return value


def json_safe(text: str) -> str:
    """JSON text with its control characters but the newline as ``\\u`` escapes.

    json.dumps(ensure_ascii=False) escapes C0 characters in strings but leaves
    DEL, C1 and lone surrogates as they are. Outside its strings, JSON text
    holds no control character but the newlines of its indentation; inside
    them, a ``\\u`` escape reads back as the character it replaces.
    """
    return _UNSAFE_BUT_NEWLINE.sub(_json_escape, text)


def json_line(value: Any) -> str:
    """``value`` as JSON on one line, its control characters as ``\\u`` escapes."""
    return _UNSAFE.sub(_json_escape, json.dumps(value, sort_keys=True, ensure_ascii=False))


def json_text(data: Any) -> str:
    """``data`` as indented JSON with no control character but its newlines."""
    return json_safe(json.dumps(data, indent=2, sort_keys=True, ensure_ascii=False))


class TerminalWriter:
    """A writer that lets no control character but the newline through.

    Every command's output goes through one, behind the escaping each does
    of the stored text it lays out: what a command misses still cannot
    reach the terminal as a control character.
    """

    def __init__(self, out: Writer, json_output: bool = False) -> None:
        """``json_output``: the command prints JSON text, escaped as :func:`json_safe` does."""
        self.out = out
        self.escape = json_safe if json_output else printable_lines

    def write(self, text: str) -> Any:
        return self.out.write(self.escape(text))
