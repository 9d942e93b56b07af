"""The earlier path of :mod:`triggers.tasks.celery_tasks`: the Celery task of each registered task.

This path is that module itself (``sys.modules`` maps it there), so its
objects are the same, and what is patched here is patched there.

Kept for code written against the development versions of 3.0, which
had the module at this path (it is not a 2.x path).
"""

import sys
from typing import TYPE_CHECKING

from .tasks import celery_tasks as _module

if TYPE_CHECKING:
    from .tasks.celery_tasks import *  # noqa: F403 (the names type checkers see here)

sys.modules[__name__] = _module
