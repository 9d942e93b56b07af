"""The earlier path of :mod:`triggers.tasks.runners`: the runners, as 2.x code imports them.

This path is that module itself (``sys.modules`` maps it there), so its
objects are the same, and what is patched here is patched there.

2.x shim: kept so that code written for Triggers 2.x keeps working.
"""

import sys
from typing import TYPE_CHECKING

from .tasks import runners as _module

if TYPE_CHECKING:
    from .tasks.runners import *  # noqa: F403 (the names type checkers see here)

sys.modules[__name__] = _module
