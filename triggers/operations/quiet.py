"""Task tracebacks kept off the operator's terminal unless asked for (``-v 2``).

A writing command may run tasks in its own process (the ``sync`` and
``threading`` runners); a task that fails is logged there with its
traceback, which Python's last-resort handler prints on stderr. The
command already reports where each instance ended (``failed: Type:
message``, and the whole traceback is stored on the instance), so below
verbosity 2 the records of the package's runners keep their one line and
lose the traceback: stderr then holds at most those lines, and ``--json``
output on stdout is never mixed with a traceback.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Iterator

__all__ = ["TRACEBACK_VERBOSITY", "TASK_LOGGERS", "task_tracebacks"]

#: the verbosity from which task tracebacks are shown
TRACEBACK_VERBOSITY = 2

#: the package's loggers that log a failed task with its traceback
TASK_LOGGERS = ("triggers.runners", "triggers.task", "triggers.manager")


class _NoTraceback(logging.Filter):
    """Keeps a record's message, drops its traceback (pointing to ``-v 2``)."""

    def filter(self, record: logging.LogRecord) -> bool:
        if record.exc_info or record.exc_text:
            record.exc_info = None
            record.exc_text = None
            record.msg = f"{record.getMessage()} (its traceback: -v 2, or show --json)"
            record.args = None
        return True


@contextlib.contextmanager
def task_tracebacks(verbosity: int) -> Iterator[None]:
    """Within: below ``TRACEBACK_VERBOSITY``, the task loggers log no traceback."""
    if verbosity >= TRACEBACK_VERBOSITY:
        yield
        return
    quiet = _NoTraceback()
    loggers = [logging.getLogger(name) for name in TASK_LOGGERS]
    for logger in loggers:
        logger.addFilter(quiet)
    try:
        yield
    finally:
        for logger in loggers:
            logger.removeFilter(quiet)
