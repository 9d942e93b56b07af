"""Helpers for exceptions that carry context (``triggers.exceptions``, as in 2.x).

:func:`with_context` attaches a dict to an exception as ``exc.context``, for
whoever records the failure: the failure metadata of a task instance keeps
it as ``exceptionContext``. Keep the values plain data (strings, numbers,
lists, dicts), since the metadata is stored in the session's cache.

2.x shim: kept so that code written for Triggers 2.x keeps working.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, TypeVar

from .errors import TriggersError

__all__ = ["InvalidTriggerKwargs", "with_context"]

E = TypeVar("E", bound=BaseException)


def with_context(exc: E, context: Mapping[str, Any]) -> E:
    """Attach ``context`` to ``exc`` as ``exc.context`` and return ``exc``: ``raise with_context(...)``.

    A context the exception already carries is merged with (the new values
    win); one that is not a mapping is replaced, since an exception on its
    way up must not be traded for an error about its context.
    """
    existing = getattr(exc, "context", None)
    merged = dict(existing) if isinstance(existing, Mapping) else {}
    merged.update(context)
    exc.context = merged  # type: ignore[attr-defined]
    return exc


class InvalidTriggerKwargs(TriggersError, ValueError):
    """Trigger kwargs that :meth:`triggers.task.TaskContext.filter_kwargs` rejected.

    ``errors`` maps each trigger name to ``{kwarg name: why it was rejected}``,
    every bad value at once; ``context`` (see :func:`with_context`) holds the
    same under ``filter_errors``, so it ends up in the failed instance's
    ``exceptionContext``.
    """

    def __init__(self, errors: Mapping[str, Mapping[str, str]]) -> None:
        self.errors: dict[str, dict[str, str]] = {
            trigger: dict(problems) for trigger, problems in errors.items()
        }
        details = "; ".join(
            f"{trigger}.{kwarg}: {problem}"
            for trigger, problems in sorted(self.errors.items())
            for kwarg, problem in sorted(problems.items())
        )
        super().__init__(f"invalid trigger kwargs: {details}")
        with_context(self, {"filter_errors": self.errors})
