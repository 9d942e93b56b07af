"""Logging helpers of 2.x (``triggers.logging``): handlers that remember, loggers that stay local.

- :class:`~triggers.logging.handlers.LogLevelHandler` remembers the highest
  level emitted, which is what a task's ``logLevel`` metadata is.
- :class:`~triggers.logging.handlers.MemoryHandler` keeps records in a list,
  for tests that assert on what was logged.
- :class:`~triggers.logging.loggers.LocalLogger` is a logger outside the
  global logging tree: only the handlers added to it see its records.
- :class:`~triggers.logging.loggers.LoggerAdapter` adds a fixed context
  (such as :meth:`triggers.task.TaskContext.get_logger_context`) to every
  record, merged with the ``extra`` of each call.

This package is named like the standard library's, and every module in it
imports the standard library's with an absolute ``import logging``.

2.x shim: kept so that code written for Triggers 2.x keeps working.
"""

from __future__ import annotations

from triggers.logging.handlers import LogLevelHandler, MemoryHandler
from triggers.logging.loggers import LocalLogger, LoggerAdapter

__all__ = ["LocalLogger", "LogLevelHandler", "LoggerAdapter", "MemoryHandler"]
