"""Keyword arguments under the names Triggers 2.x gave them.

2.x callers wrote ``update_instance_status(task_instance=...)``,
``replay_failed_instance(failed_instance=...)`` and the like; this package
names those parameters by what they accept (``instance_or_name``). The
decorator here lets a function take the 2.x name as well, so keyword
callers of either version work.

2.x shim: kept so that code written for Triggers 2.x keeps working.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any, ParamSpec, TypeVar

__all__ = ["renamed_keywords"]

P = ParamSpec("P")
R = TypeVar("R")


def renamed_keywords(**old_to_new: str) -> Callable[[Callable[P, R]], Callable[P, R]]:
    """Accept each ``old=`` keyword as ``new=``; giving both is a TypeError."""

    def decorate(func: Callable[P, R]) -> Callable[P, R]:
        @functools.wraps(func)
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            for old, new in old_to_new.items():
                if old in kwargs:
                    if new in kwargs:
                        raise TypeError(
                            f"{func.__qualname__}() got both {old!r} (the 2.x name) and {new!r}"
                        )
                    kwargs[new] = kwargs.pop(old)
            return func(*args, **kwargs)

        return wrapper

    return decorate
