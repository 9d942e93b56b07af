"""The earlier path of :mod:`triggers.tasks.payload`: ``TaskPayload``, what a runner sends.

This path is that module itself (``sys.modules`` maps it there), so its
objects are the same, and what is patched here is patched there.

Kept for code written against the development versions of 3.0, which
had the module at this path (it is not a 2.x path).
"""

import sys
from typing import TYPE_CHECKING

from .tasks import payload as _module

if TYPE_CHECKING:
    from .tasks.payload import *  # noqa: F403 (the names type checkers see here)

sys.modules[__name__] = _module
