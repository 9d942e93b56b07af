"""Handlers that keep what they were given, for tasks and the tests of tasks.

2.x shim: kept so that code written for Triggers 2.x keeps working.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from typing import overload

__all__ = ["LogLevelHandler", "MemoryHandler"]


class LogLevelHandler(logging.Handler):
    """Remembers the highest level of the records it handled (``NOTSET`` before any).

    Attached to a task's logger, ``max_level`` is what 2.x stored as the
    instance's ``logLevel``; the records themselves are not kept.
    """

    def __init__(self, level: int = logging.NOTSET) -> None:
        super().__init__(level)
        self.max_level = logging.NOTSET

    @property
    def max_level_emitted(self) -> int:
        """The 2.x name of :attr:`max_level` (the same value)."""
        return self.max_level

    @property
    def max_level_name(self) -> str:
        return logging.getLevelName(self.max_level)

    def emit(self, record: logging.LogRecord) -> None:
        # Handler.handle() holds self.lock around emit().
        if record.levelno > self.max_level:
            self.max_level = record.levelno

    def clear(self) -> None:
        """Forget the levels seen so far."""
        self.acquire()
        try:
            self.max_level = logging.NOTSET
        finally:
            self.release()


class MemoryHandler(logging.Handler):
    """Keeps every record it handles, in order: ``handler[0]``, ``len(handler)``, ``for r in handler``.

    Unlike the standard library's ``logging.handlers.MemoryHandler`` it
    never flushes anywhere; ``messages`` gives the records as this handler's
    formatter renders them (the bare message by default).
    """

    def __init__(self, level: int = logging.NOTSET) -> None:
        super().__init__(level)
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)

    def clear(self) -> None:
        """Forget the records kept so far."""
        self.acquire()
        try:
            self.records.clear()
        finally:
            self.release()

    @property
    def messages(self) -> list[str]:
        """Each record formatted with this handler's formatter."""
        return [self.format(record) for record in self._snapshot()]

    @property
    def max_level(self) -> int:
        """The highest level among the records kept (``NOTSET`` if none)."""
        return max((record.levelno for record in self._snapshot()), default=logging.NOTSET)

    def _snapshot(self) -> list[logging.LogRecord]:
        self.acquire()
        try:
            return list(self.records)
        finally:
            self.release()

    @overload
    def __getitem__(self, index: int) -> logging.LogRecord: ...
    @overload
    def __getitem__(self, index: slice) -> list[logging.LogRecord]: ...

    def __getitem__(self, index: int | slice) -> logging.LogRecord | list[logging.LogRecord]:
        return self._snapshot()[index]

    def __iter__(self) -> Iterator[logging.LogRecord]:
        return iter(self._snapshot())

    def __len__(self) -> int:
        return len(self.records)

    def __bool__(self) -> bool:
        # Having __len__ would make a handler with no records false: `if handler:` must not skip it.
        return True
