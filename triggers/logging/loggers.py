"""Loggers for one task run: a logger of its own, and an adapter that adds the run's context.

2.x shim: kept so that code written for Triggers 2.x keeps working.
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Mapping, MutableMapping
from typing import TYPE_CHECKING, Any

__all__ = ["LocalLogger", "LoggerAdapter"]

if TYPE_CHECKING:
    _AdapterBase = logging.LoggerAdapter[logging.Logger]
else:  # not subscriptable at run time before Python 3.11
    _AdapterBase = logging.LoggerAdapter


class LocalLogger(logging.Logger):
    """A logger that is not part of the global logging tree.

    ``logging.getLogger`` never returns it, it has no parent, and its records
    reach only the handlers added to it (never the root logger's, nor
    ``logging.lastResort`` when it has none). With no ``name``, it gets a
    unique one. So a task can log to handlers of
    its own, such as a :class:`~triggers.logging.handlers.LogLevelHandler`,
    without touching the application's logging configuration.
    """

    def __init__(self, name: str | None = None, level: int = logging.NOTSET) -> None:
        if name is None:
            name = f"triggers.local.{uuid.uuid4().hex}"
        super().__init__(name, level)
        self.propagate = False

    def addHandler(self, hdlr: logging.Handler) -> LocalLogger:  # type: ignore[override]  # noqa: N802
        """Add ``hdlr``; returns this logger, for chaining (as 2.x did)."""
        super().addHandler(hdlr)
        return self

    def isEnabledFor(self, level: int) -> bool:  # noqa: N802 (logging's name)
        # Not cached: logging clears the caches of the loggers it manages only,
        # so a cached answer would outlive setLevel() and logging.disable().
        return level > self.manager.disable and level >= self.getEffectiveLevel()

    def callHandlers(self, record: logging.LogRecord) -> None:  # noqa: N802 (logging's name)
        for handler in self.handlers:
            if record.levelno >= handler.level:
                handler.handle(record)


class LoggerAdapter(_AdapterBase):
    """Adds ``extra`` to every record, merged with the ``extra`` of the call (the call's values win).

    The standard library's adapter replaces a call's ``extra`` with its own
    (before Python 3.13); this one merges them, so a task that passes
    ``extra`` of its own still gets the run's context on the record. The
    keys become attributes of the record, so they must not be names a
    ``LogRecord`` already has (``name``, ``msg``, ``args``...).
    """

    def __init__(self, logger: logging.Logger, extra: Mapping[str, Any] | None = None) -> None:
        super().__init__(logger, dict(extra or {}))

    def process(
        self, msg: Any, kwargs: MutableMapping[str, Any]
    ) -> tuple[Any, MutableMapping[str, Any]]:
        kwargs["extra"] = {**(self.extra or {}), **(kwargs.get("extra") or {})}
        return msg, kwargs
